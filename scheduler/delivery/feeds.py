"""The .ics files in calendars/: rebuilt from the database, written atomically, only when changed.

`calendars/all.ics` holds every call; `calendars/<slug>.ics` one call each. A file whose bytes
would not change is not touched, so its modification time (the feed's Last-Modified) and its
ETag move only when a calendar has something new to show.

A stored call whose feed cannot be built (a row an older version stored, such as a start in the
year 9999) is left out with a warning naming it: every other call's feed, and all.ics without
it, are written all the same, and its own file, if it has one, is kept as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from scheduler.config import Settings
from scheduler.core import ics
from scheduler.core.recurrence import Change
from scheduler.errors import SchedulerError
from scheduler.files import write_atomically
from scheduler.store.calls import all_changes, list_calls, series_of, skipped
from scheduler.store.models import Call

log = logging.getLogger(__name__)
ALL = "all"


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """A call whose feed could not be built, and why."""

    slug: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    written: list[Path]
    removed: list[Path]
    unchanged: int
    skipped: list[Skipped] = field(default_factory=list)


def call_event(call: Call, changes: Mapping[datetime, Change]) -> ics.CallEvent:
    return ics.CallEvent(
        uid=call.uid, title=call.title, description=call.description,
        register_url=call.register_url, join_url=call.join_url, series=series_of(call),
        changes=changes, sequence=call.sequence, created=call.created_at,
        updated=call.updated_at,
    )


def render_all(session: Session, settings: Settings) -> tuple[dict[str, bytes], list[Skipped]]:
    """File name to contents, for every feed; and the calls left out, each with its reason."""
    refresh = timedelta(minutes=settings.feeds.refresh_minutes)
    changes = all_changes(session)
    events: list[ics.CallEvent] = []
    files: dict[str, bytes] = {}
    left_out: list[Skipped] = []
    for call in list_calls(session):
        try:
            event = call_event(call, changes.get(call.id or 0, {}))
            data = ics.feed([event], name=call.title, url=settings.feed_url(call.slug),
                            timezone=call.timezone, refresh=refresh)
        except Exception as e:  # whatever one stored call raises must not stop the others
            left_out.append(Skipped(slug=call.slug, reason=skipped(log, call, "the feed", e)))
            continue
        events.append(event)
        files[f"{call.slug}.ics"] = data
    combined = ics.feed(events, name=settings.feeds.name, url=settings.feed_url(ALL),
                        refresh=refresh, timezone=settings.calls.default_zones[0])
    return {f"{ALL}.ics": combined, **files}, left_out


def build(session: Session, settings: Settings) -> BuildResult:
    folder = settings.calendars
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files, left_out = render_all(session, settings)
        kept = {f"{s.slug}.ics" for s in left_out}  # their last good file, if any, stays
        written, unchanged = [], 0
        for name, data in files.items():
            path = folder / name
            if path.exists() and path.read_bytes() == data:
                unchanged += 1
                continue
            write_atomically(path, data, durable=False)  # rebuilt whenever it differs
            written.append(path)
            log.info("wrote feed %s", path)
        removed = []
        for path in folder.glob("*.ics"):
            if path.name not in files and path.name not in kept and _is_ours(path):
                path.unlink()
                removed.append(path)
                log.info("removed feed %s of a deleted call", path)
    except OSError as e:
        raise SchedulerError(f"cannot write feeds to {folder}: {e.strerror or e}") from e
    return BuildResult(written=written, removed=removed, unchanged=unchanged, skipped=left_out)


def _is_ours(path: Path) -> bool:
    with path.open("rb") as f:
        return ics.PRODID.encode() in f.read(512)
