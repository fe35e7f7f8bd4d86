"""The HTTP side of the daemon: the .ics feeds, with validators so that polling is cheap, the
members' page (`scheduler.web.site`), health and metrics.

Feeds are served from the files in calendars/ (the same files a static server could publish),
read again only when their modification time or size changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scheduler import metrics
from scheduler.config import Settings
from scheduler.errors import InvalidValue, NotFound, SchedulerError
from scheduler.web.manage import ManagePage
from scheduler.web.rsvp import RsvpPage
from scheduler.web.signup import PageError
from scheduler.web.site import Site

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


HeaderList = list[tuple[bytes, bytes]]
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_BODY = 64 * 1024  # bytes: the sign-up form with every call ticked is a few KiB
STATUS_TEXT = {400: "bad_request", 403: "form_expired", 404: "not_found",
               405: "bad_request", 413: "bad_request"}

SECURITY = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]


@dataclass(frozen=True)
class FeedFile:
    data: bytes
    etag: str
    mtime: float
    key: tuple[int, int]  # (mtime_ns, size): reread the file when this changes
    not_modified: HeaderList  # the answer's headers, made once per version of the file
    full: HeaderList


class FeedCache:
    """The feeds in memory. A file is looked at again (its modification time and size) at most
    once a second: on a busy server the look cost more than the rest of a 304, and clients are
    told they may keep a feed five minutes (CACHE_CONTROL) anyway."""

    RECHECK_SECONDS = 1.0

    def __init__(self, folder: Path, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.folder = str(folder)
        self.monotonic = monotonic
        self._files: dict[str, FeedFile] = {}
        self._checked: dict[str, float] = {}

    def get(self, name: str) -> FeedFile | None:
        now = self.monotonic()
        cached = self._files.get(name)
        if cached is not None and now - self._checked[name] < self.RECHECK_SECONDS:
            return cached
        path = os.path.join(self.folder, name)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            self._files.pop(name, None)
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        if cached is None or cached.key != key:
            with open(path, "rb") as file:
                data = file.read()
            etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
            # A 304 updates the stored answer's validators and freshness (RFC 9111 4.3.4);
            # the security headers stay those of the stored 200.
            validators = [(b"etag", etag.encode()),
                          (b"last-modified", formatdate(stat.st_mtime, usegmt=True).encode()),
                          (b"cache-control", CACHE_CONTROL.encode())]
            cached = FeedFile(data=data, etag=etag, mtime=stat.st_mtime, key=key,
                              not_modified=validators,
                              full=[*validators, *SECURITY, (b"content-length",
                                                             str(len(data)).encode()),
                                    (b"content-type", b"text/calendar; charset=utf-8")])
            self._files[name] = cached
        self._checked[name] = now
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
    """GET and HEAD of a feed that exists, answered from the cache before the application sees
    the request: feeds are the busiest answers (every member's calendar polls them), and the
    framework's middleware, routing, request and response objects were most of their cost.
    Anything else, including a feed that does not exist, goes on to the application."""

    PREFIX = "/calendars/"

    def __init__(self, app: ASGIApp, cache: FeedCache) -> None:
        self.app, self.cache = app, cache
        self.counted = {status: metrics.FEED_REQUESTS.labels(status=status)
                        for status in ("200", "304")}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        name = path[len(self.PREFIX):]
        try:
            feed = (self.cache.get(name) if scope["type"] == "http"
                    and path.startswith(self.PREFIX) and scope["method"] in ("GET", "HEAD")
                    and FEED_NAME.fullmatch(name) else None)
        except OSError as e:
            log.error("cannot read the feed %s: %s", name, e.strerror or e)
            metrics.FEED_REQUESTS.labels(status="503").inc()
            await send({"type": "http.response.start", "status": 503, "headers": [
                *SECURITY, (b"content-type", b"text/plain; charset=utf-8"),
                (b"retry-after", b"60")]})
            await send({"type": "http.response.body", "body": f"cannot read {name}\n".encode()})
            return
        if feed is None:
            await self.app(scope, receive, send)
            return
        if_none_match = if_modified_since = None
        for key, value in scope["headers"]:
            if key == b"if-none-match":
                if_none_match = value.decode("latin-1")
            elif key == b"if-modified-since":
                if_modified_since = value.decode("latin-1")
        if _not_modified(if_none_match, if_modified_since, feed):
            self.counted["304"].inc()
            await send({"type": "http.response.start", "status": 304,
                        "headers": feed.not_modified})
            await send({"type": "http.response.body", "body": b""})
            return
        self.counted["200"].inc()
        await send({"type": "http.response.start", "status": 200, "headers": feed.full})
        await send({"type": "http.response.body",
                    "body": feed.data if scope["method"] == "GET" else b""})


Health = Callable[[], dict[str, Any]]
STALE_INTERVALS = 3  # /healthz says 503 when no pass succeeded for this many intervals


def stale(state: dict[str, Any], now: float, interval: float) -> str | None:
    """Why the reminder passes look stuck, or None: no pass has succeeded, and no message
    has been recorded by a pass still sending, for more than STALE_INTERVALS intervals (or
    since the start). `now` and the state's "last_success", "last_progress" and "started" are
    readings of the same monotonic clock."""
    readings = [state.get(key) for key in ("last_success", "last_progress")]
    since = max((r for r in readings if r is not None), default=state.get("started"))
    if since is None:
        return None
    age = now - since
    if age <= STALE_INTERVALS * interval:
        return None
    return f"no successful pass for {age:.0f} s (interval {interval:.0f} s)"


def create_app(settings: Settings, engine: Engine | None = None, *,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC),
               health: Health | None = None, secret: str | None = None,
               monotonic: Callable[[], float] = time.monotonic) -> ASGIApp:
    """The feeds, the members' page (`scheduler.web.site`), /healthz and /metrics.

    `health` reports the reminder scheduler (`scheduler.daemon.Reminders.health`: "alive",
    "last_pass" and "last_error" to show, and "started" and "last_success", readings of
    `monotonic`, to tell a scheduler whose passes keep failing); `secret` signs sign-up links
    and forms (without one, every form is refused with 403 and confirmation links with 404);
    `monotonic` also tells the feed cache when to look at its files again.
    """
    cache = FeedCache(settings.calendars, monotonic=monotonic)
    site = Site(settings, engine, clock=clock, secret=secret)

    async def calendar(request: Request) -> Response:
        """A feed that does not exist (`FeedServer` answers those that do)."""
        metrics.FEED_REQUESTS.labels(status="404").inc()
        return PlainTextResponse(f"no calendar {request.path_params['name']}\n",
                                 status_code=404)

    async def healthz(request: Request) -> Response:
        """200 when the database answers, the scheduler runs and a pass has succeeded within
        the last few intervals; 503 and the reason, otherwise."""
        report: dict[str, Any] = {"ok": False, "reason": None, "database": "not configured",
                                  "scheduler": "not running", "last_pass": None,
                                  "last_error": None}
        if engine is not None:
            try:
                await asyncio.to_thread(_ping, engine)
                report["database"] = "ok"
            except SQLAlchemyError as e:
                report["database"] = f"error: {str(e).splitlines()[0]}"
        reasons = [] if report["database"] == "ok" else [f"database: {report['database']}"]
        if health is None:
            reasons.append("the reminder scheduler is not running")
        else:
            state = health()
            report["scheduler"] = "alive" if state["alive"] else "stopped"
            last = state.get("last_pass")
            report["last_pass"] = last.isoformat() if last else None
            report["last_error"] = state.get("last_error")
            if not state["alive"]:
                reasons.append("the reminder scheduler is stopped")
            late = stale(state, monotonic(), settings.daemon.interval_seconds)
            if late is not None:
                reasons.append(late)
        report["ok"], report["reason"] = not reasons, "; ".join(reasons) or None
        return JSONResponse(report, status_code=503 if reasons else 200,
                            headers={"Cache-Control": "no-store"})

    async def metrics_page(request: Request) -> Response:
        body = await asyncio.to_thread(metrics.exposition, engine)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/calendars/{name}", calendar, methods=["GET", "HEAD"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics_page),
        *site.routes(),
        *ManagePage(site).routes(),
        *RsvpPage(site).routes(),
    ]

    def problem(status: int, text: str) -> Callable[[Request, Exception], Response]:
        def handle(request: Request, exc: Exception) -> Response:
            if isinstance(exc, PageError):
                return site.problem(request, status, exc.key)
            detail = str(exc) if isinstance(exc, SchedulerError) and str(exc) else text
            return site.problem(request, status, detail)
        return handle

    def http_problem(request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (no route, a method the route does not take, a form it
        cannot read, a body too large) as our page, with their headers (Allow, for a 405)."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            moved = _without_slash(request, routes)
            if moved is not None:
                return moved
        response = site.problem(request, status, STATUS_TEXT.get(status, "bad_request"))
        if isinstance(exc, HTTPException) and exc.headers:
            response.headers.update(exc.headers)
        return response

    handlers: dict[Any, Callable[[Request, Exception], Response]] = {
        NotFound: problem(404, "not_found"), InvalidValue: problem(400, "bad_request"),
        SchedulerError: problem(500, "server_error"), HTTPException: http_problem,
    }
    application = Starlette(routes=routes, exception_handlers=handlers,
                            middleware=[Middleware(SecurityHeaders, site=site),
                                        Middleware(RequestChecks, site=site,
                                                   base_url=settings.web.base_url)])
    # A path with a slash too many is answered by `_without_slash`, with a relative Location:
    # Starlette's own redirect names the host the request's Host header gave.
    application.router.redirect_slashes = False
    return FeedServer(application, cache)


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


def _without_slash(request: Request, routes: Sequence[BaseRoute]) -> Response | None:
    """/subscribe/ is /subscribe: a permanent redirect to the path without its trailing slash,
    when that path is one of ours. The Location is a path, never a host (not even one the
    Host header names)."""
    path = request.url.path
    if path == "/" or not path.endswith("/"):
        return None
    target = "/" + path.strip("/")
    scope = {**request.scope, "path": target}
    if target.startswith("//") or not any(route.matches(scope)[0] is not Match.NONE
                                          for route in routes):
        return None
    query = request.url.query
    return RedirectResponse(target + (f"?{query}" if query else ""), status_code=308)


def origin_of(url: str) -> str | None:
    """'https://calls.example.org' for 'https://Calls.Example.org:443/x' (RFC 6454: scheme,
    host and port, a default port left out), as browsers write it in Origin; None for
    anything else ('null' included)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and port != {"http": 80, "https": 443}[parts.scheme]:
        host += f":{port}"
    return f"{parts.scheme}://{host}"


def cross_site(headers: Headers, *, allowed: str | None) -> str | None:
    """Why a state-changing request is not from our own pages, or None.

    A browser says where a request comes from: Sec-Fetch-Site (same-origin, same-site,
    cross-site or none: typed or bookmarked) and Origin. A form on another site is refused
    on either: Sec-Fetch-Site other than same-origin or none, or an Origin other than
    `allowed` (base_url's). "Origin: null" says nothing: our pages' Referrer-Policy:
    no-referrer makes browsers send it, with Sec-Fetch-Site: same-origin, for their own forms.
    Neither header at all is a client that is not a browser (curl, a mail provider's RFC 8058
    one-click unsubscribe): it goes on, and the form's CSRF token or the link's secret decides.
    """
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return f"Sec-Fetch-Site: {fetch_site}"
    origin = headers.get("origin")
    if origin is not None and origin.strip() != "null" and origin_of(origin) != allowed:
        return f"Origin: {origin}"
    return None


class RequestChecks:
    """Before a request reaches a page: a state-changing one (POST and the like) must come
    from our own pages (`cross_site`), and no body may be larger than MAX_BODY (413)."""

    def __init__(self, app: ASGIApp, site: Site, base_url: str) -> None:
        self.app, self.site = app, site
        self.base_origin = origin_of(base_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refused: tuple[int, str] | None = None
        if scope["method"] not in SAFE_METHODS:
            reason = cross_site(request.headers, allowed=self.base_origin)
            if reason is not None:
                log.warning("refused %s %s from another site (%s)", scope["method"],
                            scope.get("path"), reason)
                refused = (403, "form_expired")
        length = request.headers.get("content-length", "0")
        if refused is None and (not length.isdigit() or int(length) > MAX_BODY):
            refused = (413, "bad_request")
        if refused is not None:
            await self.site.problem(request, *refused)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:  # a chunked body, larger than it said or than we take
                raise HTTPException(413)
            return message

        await self.app(scope, limited, send)


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
