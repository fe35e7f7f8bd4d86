"""The long-running service: the web server and the reminder timer in one asyncio loop
(uvloop's where it is installed: see `scheduler.loop`).

APScheduler (3.x, `AsyncIOScheduler`) is only the timer: it wakes the loop when the outbox says
the next delivery is due, and every `interval_seconds` to notice new calls and subscribers. The
outbox in the database is the truth, so a restart loses nothing. On SIGINT or SIGTERM the
daemon stops taking work, lets the pass that is sending finish, then exits.

A dead daemon's claims are taken over within seconds, not at the end of their lease: on
PostgreSQL, while other workers hold claims, the daemon looks every `outbox.TAKEOVER_CHECK`
whether one of them is gone (`outbox.others`), and runs a pass at once when one is; on SQLite,
the one daemon frees every older claim when it starts (`only_daemon_on_sqlite`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.types import ASGIApp

from scheduler import loop
from scheduler.config import Settings, WebSettings, is_network
from scheduler.delivery import feeds, sender
from scheduler.delivery.render import Templates
from scheduler.errors import SchedulerError
from scheduler.store import db, outbox
from scheduler.web import signup
from scheduler.web.app import create_app

log = logging.getLogger(__name__)


Ready = Callable[[str], None]


class Reminders:
    """Runs passes one at a time, in a worker thread (database and SMTP block).

    For /healthz it keeps when it started and when a pass last succeeded, on the `monotonic`
    clock (a wall clock that jumps must not make it look stuck), and the last pass's error: a
    pass that raises leaves `last_pass` and `last_success` as they were. A pass that sends for
    long (a slow relay, a large fan-out) is alive while messages keep being recorded: each one
    moves `last_progress`.

    Each pass first checks the schema: after an upgrade by a newer `coalition init`, this
    daemon stops sending (and /healthz says why) rather than write into a schema it does not
    know.
    """

    def __init__(self, settings: Settings, engine: Engine, scheduler: AsyncIOScheduler,
                 worker: str, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.engine = settings, engine
        self.scheduler, self.worker = scheduler, worker
        self.lock = asyncio.Lock()
        self.stopping = False
        self.monotonic = monotonic
        self.started = monotonic()
        self.last_pass: datetime | None = None
        self.last_success: float | None = None  # monotonic() when the last good pass ended
        self.last_progress: float | None = None  # monotonic() when a message was last recorded
        self.last_error: str | None = None
        self.feeds_built: datetime | None = None
        self.plan_memo: dict[str, object] = {}  # lets a pass plan only what is new
        self.templates: Templates | None = None
        self.watching = False  # other workers hold claims: look whether they are alive

    def _progress(self) -> datetime:
        """The sending pass's clock: each recorded message reads it, which shows progress."""
        self.last_progress = self.monotonic()
        return datetime.now(UTC)

    def _pass(self) -> datetime | None:
        now = datetime.now(UTC)
        db.check_schema(self.engine)
        with Session(self.engine, expire_on_commit=False) as session:
            # Calls may have changed elsewhere (another replica's machine): keep the feeds this
            # daemon serves current, once an interval, not on every wake-up for a reminder.
            # The templates likewise: compiled once an interval, not for every batch of a
            # fan-out (Jinja still reads a template file again when it changes).
            interval = timedelta(seconds=self.settings.daemon.interval_seconds)
            if self.feeds_built is None or now - self.feeds_built >= interval:
                try:
                    feeds.build(session, self.settings)
                except SchedulerError as e:  # a full disk or a folder we may not write
                    log.error("feeds not rebuilt (reminders go on): %s", e)
                self.templates = Templates(self.settings.template_folders)
                self.feeds_built = now
            report = sender.run_once(session, self.settings, now=now, worker=self.worker,
                                     clock=self._progress, memo=self.plan_memo,
                                     templates=self.templates, batches=1)
            if report.outcomes or report.expired or any(report.planned.values()):
                log.info("pass at %s: %s", now.isoformat(timespec="seconds"),
                         "; ".join(report.lines()))
            later = datetime.now(UTC)
            wakeup = outbox.next_wakeup(session, worker=self.worker, waiting=(
                outbox.waiting_channels(session, now=later,
                                        transports=sender.transports(self.settings))))
            held = outbox.others(session, now=later, worker=self.worker)
            session.commit()
            self.watching = bool(held)
            if not all(held.values()):  # gone since this pass claimed: take theirs now
                wakeup = later
            self.last_pass, self.last_success = now, self.monotonic()
            self.last_error = None
            return wakeup

    def _others(self) -> dict[str, bool]:
        with Session(self.engine) as session:
            return outbox.others(session, now=datetime.now(UTC), worker=self.worker)

    async def watch(self) -> None:
        """While other workers hold claims (PostgreSQL only): whether one of them is gone,
        every `outbox.TAKEOVER_CHECK`; a pass at once takes the claims of one that is."""
        if self.stopping or self.lock.locked():
            return  # the pass looks when it ends
        try:
            held = await asyncio.to_thread(self._others)
        except Exception as e:  # the database is away: the next pass says so
            log.debug("cannot look whether other workers are alive: %s", e)
            held = {"": True}
        if not all(held.values()):
            await self.tick()
        elif held and not self.stopping:
            self._watch_later()

    def _watch_later(self) -> None:
        self.scheduler.add_job(self.watch, "date", id="watch", replace_existing=True,
                               run_date=datetime.now(UTC) + outbox.TAKEOVER_CHECK,
                               misfire_grace_time=None)

    async def tick(self) -> None:
        if self.stopping or self.lock.locked():
            return
        async with self.lock:
            try:
                wakeup = await asyncio.to_thread(self._pass)
            except Exception as e:
                self.last_error = (f"{datetime.now(UTC).isoformat(timespec='seconds')}: "
                                   f"{type(e).__name__}: {e}").splitlines()[0]
                log.exception("reminder pass failed; the next one retries")
                return
        if wakeup is not None and not self.stopping:
            when = max(wakeup, datetime.now(UTC)) + timedelta(milliseconds=50)
            self.scheduler.add_job(self.tick, "date", run_date=when, id="wake",
                                   replace_existing=True, misfire_grace_time=None)
        if self.watching and not self.stopping:
            self._watch_later()

    def health(self) -> dict[str, Any]:
        """What /healthz reports (see `scheduler.web.app.create_app`)."""
        return {"alive": self.scheduler.running and not self.stopping,
                "last_pass": self.last_pass, "last_error": self.last_error,
                "last_success": self.last_success, "last_progress": self.last_progress,
                "started": self.started}

    async def stop(self) -> None:
        """No new pass; wait for the one that is sending."""
        self.stopping = True
        async with self.lock:
            pass


async def serve(settings: Settings, engine: Engine, *, host: str, port: int,
                on_ready: Ready | None = None, worker: str = "daemon") -> None:
    """Build the feeds, then serve until SIGINT or SIGTERM; open requests are finished first."""
    with Session(engine) as session:
        result = feeds.build(session, settings)
    log.info("feeds in %s: %d written, %d unchanged", settings.calendars, len(result.written),
             result.unchanged)
    try:
        listener = socket.create_server((host, port), reuse_port=False)
    except OSError as e:
        raise SchedulerError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    scheduler = AsyncIOScheduler(timezone=UTC)
    reminders = Reminders(settings, engine, scheduler, worker)
    app = create_app(settings, engine, secret=signup.site_secret(settings, engine),
                     health=reminders.health)
    config = web_server_config(app, settings.web)
    server = _Server(config, on_ready)
    stopping = asyncio.Event()
    running = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        running.add_signal_handler(signum, stopping.set)
    scheduler.add_job(reminders.tick, "interval", seconds=settings.daemon.interval_seconds,
                      id="look", next_run_time=datetime.now(UTC), coalesce=True,
                      max_instances=1, misfire_grace_time=None)
    scheduler.start()
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    stop = asyncio.create_task(stopping.wait())
    await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping: finishing the pass in progress")
    scheduler.shutdown(wait=False)
    await reminders.stop()
    outbox.let_go(engine, worker)  # claims it left (none, normally) are free at once
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


# uvicorn's own limits. It has no timeout for reading a request's headers (a client sending
# one byte every few seconds holds its connection): the daemon runs behind nginx
# (deploy/nginx.conf: client_header_timeout, client_body_timeout, limit_conn), which does.
KEEP_ALIVE_SECONDS = 5  # an idle connection between two requests is closed after this
MAX_HEADER_BYTES = 16 * 1024  # a request line and headers larger than this are refused (h11)


def web_server_config(app: ASGIApp, web: WebSettings,
                      environ: Mapping[str, str] | None = None) -> uvicorn.Config:
    """uvicorn's settings for the members' page and the feeds.

    X-Forwarded-For and X-Forwarded-Proto are believed only from the addresses or networks in
    `[web] trusted_proxies` (none by default; deploy/ names nginx on this machine). From anyone
    else they are ignored, so a client cannot pick the address its sign-up limit (`[web]
    signup_per_ip`) is counted against, and behind the proxy every member is counted as
    themselves, not as the proxy. uvicorn's own `FORWARDED_ALLOW_IPS`, which the unit file of
    earlier versions set to nginx's addresses, is read only while `trusted_proxies` is empty,
    and only for addresses and networks (not "*"), with a warning to move it into config.

    At most `[web] max_connections` connections are served at once (more get 503).
    """
    environ = os.environ if environ is None else environ
    trusted = list(web.trusted_proxies)
    legacy = [item.strip() for item in environ.get("FORWARDED_ALLOW_IPS", "").split(",")
              if item.strip()]
    if legacy and trusted:
        log.warning("FORWARDED_ALLOW_IPS is ignored: [web] trusted_proxies names the proxies")
    elif legacy:
        trusted = [item for item in legacy if is_network(item)]
        log.warning("FORWARDED_ALLOW_IPS (%s) stands in for [web] trusted_proxies: put %s "
                    "there (README, Upgrades)", ", ".join(legacy), trusted or "nothing")
    if trusted:
        log.info("client addresses from X-Forwarded-For of %s only ([web] trusted_proxies)",
                 ", ".join(trusted))
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                          log_config=None,  # its loggers go to ours (log.setup: tokens redacted)
                          proxy_headers=bool(trusted), forwarded_allow_ips=trusted,
                          server_header=False, limit_concurrency=web.max_connections,
                          timeout_keep_alive=KEEP_ALIVE_SECONDS,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES)


def running_here(worker: str) -> bool:
    """Whether the worker `host:pid` (`cli.worker_id`) may still be sending: a process of
    that number runs on this machine. A worker of another machine cannot share a SQLite
    file with us, so it is gone."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it runs
        return True
    return True


@contextlib.contextmanager
def only_daemon_on_sqlite(engine: Engine) -> Iterator[None]:
    """SQLite serves one daemon: a second one on the same file is refused, with a clear line.

    An exclusive lock on `<database>.daemon.lock`, held while the daemon runs, says so; the
    operating system releases it when the process ends, however it ends. Being the only one,
    the daemon frees every claim an earlier one left (killed mid-send), at once rather than
    when their lease ends. PostgreSQL needs no such lock: there, daemons share the work, and
    each knows whether another is alive (`outbox.hold`).
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        yield
        return
    import fcntl  # POSIX only: imported here, so that the CLI's other commands run everywhere

    path = Path(f"{database}.daemon.lock")
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise SchedulerError(
                f"another daemon ({holder}) is running on {database}; SQLite serves one daemon "
                "at a time: run several on PostgreSQL ([database] url)") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        with Session(engine) as session:
            freed = outbox.free_claims(session, alive=running_here)
        if freed:
            log.info("%d deliveries claimed by a daemon that stopped are free again", freed)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run(settings: Settings, engine: Engine, *, host: str, port: int,
        on_ready: Ready | None = None, worker: str = "daemon") -> None:
    gc.freeze()  # loaded: see scheduler/entry.py (this module is imported after the freeze there)
    with only_daemon_on_sqlite(engine):
        loop.run(serve(settings, engine, host=host, port=port, on_ready=on_ready,
                         worker=worker))
