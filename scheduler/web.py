"""The HTTP side of the daemon: the .ics feeds, with validators so that polling is cheap, the
members' page (`scheduler.site`), health and metrics.

Feeds are served from the files in calendars/ (the same files a static server could publish),
read again only when their modification time or size changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scheduler import metrics
from scheduler.config import Settings
from scheduler.errors import InvalidValue, NotFound, SchedulerError
from scheduler.signup import PageError
from scheduler.site import Site

log = logging.getLogger(__name__)

FEED_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\.ics")
CACHE_CONTROL = "public, max-age=300"
SECURITY_HEADERS = {
    # Scripts and styles from this site only (no inline ones), nothing framed, forms post here.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # Links carry secrets (unsubscribe, confirm): never pass them on as a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class FeedFile:
    data: bytes
    etag: str
    mtime: float
    last_modified: str  # mtime as an HTTP date, made once per version of the file
    key: tuple[int, int]  # (mtime_ns, size): reread the file when this changes


class FeedCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[str, FeedFile] = {}

    def get(self, name: str) -> FeedFile | None:
        path = self.folder / name
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._files.pop(name, None)
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._files.get(name)
        if cached is None or cached.key != key:
            data = path.read_bytes()
            etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
            cached = FeedFile(data=data, etag=etag, mtime=stat.st_mtime, key=key,
                              last_modified=formatdate(stat.st_mtime, usegmt=True))
            self._files[name] = cached
        return cached


def _not_modified(if_none_match: str | None, if_modified_since: str | None,
                  feed: FeedFile) -> bool:
    """RFC 9110 13.2.2: If-None-Match wins; If-Modified-Since only without it."""
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or feed.etag in tags
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError, IndexError):
            return False
        return int(feed.mtime) <= since
    return False


class FeedServer:
    """GET and HEAD of a feed that exists, answered from the cache ahead of routing: feeds are
    the busiest answers (every member's calendar polls them), and the framework's routing,
    request and response objects were most of their cost. Anything else, including a feed
    that does not exist, goes on to the application."""

    PREFIX = "/calendars/"

    def __init__(self, app: ASGIApp, cache: FeedCache) -> None:
        self.app, self.cache = app, cache
        self.counted = {status: metrics.FEED_REQUESTS.labels(status=status)
                        for status in ("200", "304")}
        self.common = [(b"cache-control", CACHE_CONTROL.encode()),
                       *((name.lower().encode(), value.encode())
                         for name, value in SECURITY_HEADERS.items())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        name = path[len(self.PREFIX):] if path.startswith(self.PREFIX) else ""
        feed = (self.cache.get(name) if scope.get("method") in ("GET", "HEAD")
                and FEED_NAME.fullmatch(name) else None)
        if feed is None:
            await self.app(scope, receive, send)
            return
        asked = {key.decode(): value.decode("latin-1") for key, value in scope["headers"]
                 if key in (b"if-none-match", b"if-modified-since")}
        headers = [(b"etag", feed.etag.encode()),
                   (b"last-modified", feed.last_modified.encode()),
                   *self.common]
        if _not_modified(asked.get("if-none-match"), asked.get("if-modified-since"), feed):
            self.counted["304"].inc()
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        self.counted["200"].inc()
        headers += [(b"content-type", b"text/calendar; charset=utf-8"),
                    (b"content-length", str(len(feed.data)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body",
                    "body": feed.data if scope["method"] == "GET" else b""})


Health = Callable[[], dict[str, Any]]


def create_app(settings: Settings, engine: Engine | None = None, *,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC),
               health: Health | None = None, secret: str | None = None) -> Starlette:
    """The feeds, the members' page (`scheduler.site`), /healthz and /metrics.

    `health` reports the reminder scheduler ({"alive": bool, "last_pass": datetime|None});
    `secret` signs sign-up links and forms (without one, every form is refused with 403 and
    confirmation links with 404).
    """
    cache = FeedCache(settings.calendars)
    site = Site(settings, engine, clock=clock, secret=secret)

    async def calendar(request: Request) -> Response:
        """A feed that does not exist (`FeedServer` answers those that do)."""
        metrics.FEED_REQUESTS.labels(status="404").inc()
        return PlainTextResponse(f"no calendar {request.path_params['name']}\n",
                                 status_code=404)

    async def healthz(request: Request) -> Response:
        """200 when the database answers and the scheduler runs; 503 and why, otherwise."""
        report: dict[str, Any] = {"database": "not configured", "scheduler": "not running",
                                  "last_pass": None}
        if engine is not None:
            try:
                await asyncio.to_thread(_ping, engine)
                report["database"] = "ok"
            except SQLAlchemyError as e:
                report["database"] = f"error: {str(e).splitlines()[0]}"
        if health is not None:
            state = health()
            report["scheduler"] = "alive" if state["alive"] else "stopped"
            last = state.get("last_pass")
            report["last_pass"] = last.isoformat() if last else None
        healthy = report["database"] == "ok" and report["scheduler"] == "alive"
        return JSONResponse(report, status_code=200 if healthy else 503,
                            headers={"Cache-Control": "no-store"})

    async def metrics_page(request: Request) -> Response:
        body = await asyncio.to_thread(metrics.exposition, engine)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/calendars/{name}", calendar, methods=["GET", "HEAD"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics_page),
        *site.routes(),
    ]

    def problem(status: int, text: str) -> Callable[[Request, Exception], Response]:
        def handle(request: Request, exc: Exception) -> Response:
            if isinstance(exc, PageError):
                return site.problem(request, status, exc.key)
            detail = str(exc) if isinstance(exc, SchedulerError) and str(exc) else text
            return site.problem(request, status, detail)
        return handle

    handlers: dict[Any, Callable[[Request, Exception], Response]] = {
        NotFound: problem(404, "not_found"), InvalidValue: problem(400, "bad_request"),
        SchedulerError: problem(500, "server_error"),
        404: problem(404, "not_found"), 405: problem(405, "bad_request"),
    }
    return Starlette(routes=routes, exception_handlers=handlers,
                     middleware=[Middleware(FeedServer, cache=cache),
                                 Middleware(SecurityHeaders, site=site)])


class SecurityHeaders:
    """Every answer gets the security headers; an unexpected error becomes a plain page (the
    traceback goes to the log, never to the browser)."""

    def __init__(self, app: ASGIApp, site: Site) -> None:
        self.app, self.site = app, site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("error answering %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = self.site.problem(Request(scope), 500, "server_error")
            await response(scope, receive, send_with_headers)


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
