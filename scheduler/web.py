"""The HTTP side of the daemon: the .ics feeds, with validators so that polling is cheap, and
the one-click unsubscribe link of every email.

Feeds are served from the files in calendars/ (the same files a static server could publish),
read again only when their modification time or size changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from html import escape
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from scheduler import metrics, subscribers
from scheduler.errors import NotFound

FEED_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\.ics")
CACHE_CONTROL = "public, max-age=300"
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True)
class FeedFile:
    data: bytes
    etag: str
    mtime: float
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
            cached = FeedFile(data=data, etag=etag, mtime=stat.st_mtime, key=key)
            self._files[name] = cached
        return cached


def _not_modified(request: Request, feed: FeedFile) -> bool:
    """RFC 9110 13.2.2: If-None-Match wins; If-Modified-Since only without it."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or feed.etag in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError, IndexError):
            return False
        return int(feed.mtime) <= since
    return False


UNSUBSCRIBE_PAGE = """<!DOCTYPE html><html lang=en><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1"><title>{title}</title>
<body style="font-family: sans-serif; max-width: 32em; margin: 2em auto; padding: 0 1em">
<h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(UNSUBSCRIBE_PAGE.format(title=escape(title), body=body),
                        status_code=status, headers={**SECURITY_HEADERS,
                                                     "Cache-Control": "no-store"})


Health = Callable[[], dict[str, Any]]


def create_app(calendars: Path, engine: Engine | None = None,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC),
               health: Health | None = None) -> Starlette:
    """`health` reports the reminder scheduler ({"alive": bool, "last_pass": datetime|None})."""
    cache = FeedCache(calendars)

    async def calendar(request: Request) -> Response:
        name = request.path_params["name"]
        feed = cache.get(name) if FEED_NAME.fullmatch(name) else None
        if feed is None:
            metrics.FEED_REQUESTS.labels(status="404").inc()
            return PlainTextResponse(f"no calendar {name}\n", status_code=404,
                                     headers=SECURITY_HEADERS)
        headers = {"ETag": feed.etag, "Last-Modified": formatdate(feed.mtime, usegmt=True),
                   "Cache-Control": CACHE_CONTROL, **SECURITY_HEADERS}
        if _not_modified(request, feed):
            metrics.FEED_REQUESTS.labels(status="304").inc()
            return Response(status_code=304, headers=headers)
        metrics.FEED_REQUESTS.labels(status="200").inc()
        return Response(feed.data, media_type="text/calendar; charset=utf-8", headers=headers)

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

    async def index(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        items = []
        for path in sorted(calendars.glob("*.ics")):
            https = f"{base}/calendars/{path.name}"
            webcal = "webcal://" + https.split("://", 1)[1]
            items.append(f'<li>{escape(path.stem)}: <a href="{escape(webcal)}">subscribe</a> '
                         f'(<a href="{escape(https)}">{escape(https)}</a>)</li>')
        body = ("<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Coalition calls</title>"
                "<h1>Coalition calls</h1><ul>" + "".join(items) + "</ul></html>")
        return HTMLResponse(body, headers=SECURITY_HEADERS)

    async def unsubscribe(request: Request) -> Response:
        """GET: a page with one button. POST: unsubscribe; a mail provider's RFC 8058 one-click
        POST (List-Unsubscribe=One-Click) lands here too and gets the same 200."""
        token = request.path_params["token"]
        if engine is None or not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", token):
            return _page("Link not valid", "<p>This unsubscribe link is not valid.</p>", 404)
        if request.method == "GET":
            return _page("Unsubscribe", '<p>Stop all reminders about coalition calls to this '
                         'address?</p><form method="post"><button type="submit" style="font-size:'
                         '1.1em; padding: .5em 1em">Unsubscribe</button></form>')
        def act() -> str | None:
            with Session(engine, expire_on_commit=False) as session:
                try:
                    return subscribers.unsubscribe_by_token(session, token, now=clock()).email
                except NotFound:
                    return None
        email = await asyncio.to_thread(act)
        if email is None:
            return _page("Link not valid", "<p>This unsubscribe link is not valid.</p>", 404)
        return _page("Unsubscribed", f"<p>{escape(email)} will get no more reminders.</p>")

    return Starlette(routes=[
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/calendars/{name}", calendar, methods=["GET", "HEAD"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics_page),
    ])


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
