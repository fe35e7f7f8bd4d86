"""The long-running service: the web server (and, later, the reminder scheduler) in one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn
from sqlalchemy import Engine
from sqlmodel import Session

from scheduler import feeds
from scheduler.config import Settings
from scheduler.errors import SchedulerError
from scheduler.web import create_app

log = logging.getLogger(__name__)


Ready = Callable[[str], None]


async def serve(settings: Settings, engine: Engine, *, host: str, port: int,
                on_ready: Ready | None = None) -> None:
    """Build the feeds, then serve until SIGINT or SIGTERM; open requests are finished first."""
    with Session(engine) as session:
        result = feeds.build(session, settings)
    log.info("feeds in %s: %d written, %d unchanged", settings.calendars, len(result.written),
             result.unchanged)
    try:
        listener = socket.create_server((host, port), reuse_port=False)
    except OSError as e:
        raise SchedulerError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    config = uvicorn.Config(create_app(settings.calendars), log_level="warning",
                            access_log=False, lifespan="off")
    server = _Server(config, on_ready)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    stop = asyncio.create_task(stopping.wait())
    await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping")
    server.should_exit = True
    await serving
    stop.cancel()


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling (the daemon stops it), telling `on_ready` its
    address once it listens, so that scripts and tests can wait for that instead of guessing."""

    def __init__(self, config: uvicorn.Config, on_ready: Ready | None) -> None:
        super().__init__(config)
        self.on_ready = on_ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_ready is not None:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self.on_ready(f"http://{host}:{port}/")


def run(settings: Settings, engine: Engine, *, host: str, port: int,
        on_ready: Ready | None = None) -> None:
    asyncio.run(serve(settings, engine, host=host, port=port, on_ready=on_ready))
