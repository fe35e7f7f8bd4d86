"""The HTTP side of the daemon: the .ics feeds, with validators so that polling is cheap.

Feeds are served from the files in calendars/ (the same files a static server could publish),
read again only when their modification time or size changes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from html import escape
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

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


def create_app(calendars: Path) -> Starlette:
    cache = FeedCache(calendars)

    async def calendar(request: Request) -> Response:
        name = request.path_params["name"]
        feed = cache.get(name) if FEED_NAME.fullmatch(name) else None
        if feed is None:
            return PlainTextResponse(f"no calendar {name}\n", status_code=404,
                                     headers=SECURITY_HEADERS)
        headers = {"ETag": feed.etag, "Last-Modified": formatdate(feed.mtime, usegmt=True),
                   "Cache-Control": CACHE_CONTROL, **SECURITY_HEADERS}
        if _not_modified(request, feed):
            return Response(status_code=304, headers=headers)
        return Response(feed.data, media_type="text/calendar; charset=utf-8", headers=headers)

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

    return Starlette(routes=[
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/calendars/{name}", calendar, methods=["GET", "HEAD"]),
    ])
