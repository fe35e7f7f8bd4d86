"""What the members' page shows: every call's next occurrences in the reader's zone and
language, the ways to put them in a calendar, and the zone picker. Plain dicts for templates.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, available_timezones

import pytz
from babel import Locale, negotiate_locale
from sqlmodel import Session

from scheduler.config import Settings
from scheduler.core import ics
from scheduler.core.ics import CallEvent
from scheduler.core.recurrence import Occurrence, Status, occurrence_at, occurrences
from scheduler.core.timetable import format_offset, full_date, local_time, zone_label
from scheduler.core.zones import to_utc
from scheduler.delivery.feeds import call_event
from scheduler.delivery.render import first_of_month
from scheduler.errors import InvalidValue, NotFound
from scheduler.store.calls import all_changes, changes_of, get_call, list_calls, series_of, skipped
from scheduler.store.models import Call

log = logging.getLogger(__name__)
PER_CALL = 4  # occurrences shown for each call
STAMP = "%Y%m%dT%H%M%SZ"  # an occurrence in a URL: its original start in UTC


def language(accept: str | None, chosen: str | None, languages: Sequence[str]) -> str:
    """The reader's choice (a cookie or ?lang=) if we have it, else the best match for the
    browser's Accept-Language (RFC 9110 12.5.4: q-values, then order), else the first."""
    if chosen is not None and chosen in languages:
        return chosen
    wanted: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and quality > 0:
            wanted.append((-quality, position, tag.replace("-", "_")))
    found = negotiate_locale([tag for _, _, tag in sorted(wanted)], list(languages), sep="_")
    return found if found is not None and found in languages else languages[0]


def _sort_key(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold())
                   if not unicodedata.combining(c))


@cache
def zone_groups(lang: str) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """(country, ((zone, city), ...)), countries by name in `lang`; UTC first.

    The tz database's country table comes from pytz (zoneinfo has none); zones come from
    tzdata, so a name pytz knows and tzdata does not is left out.
    """
    known = available_timezones()
    territories = Locale.parse(lang).territories
    groups = []
    for code, zones in pytz.country_timezones.items():
        cities = tuple(sorted(((z, zone_label(z, lang)) for z in zones if z in known),
                              key=lambda item: _sort_key(item[1])))
        if cities:
            groups.append((territories.get(code.upper(), pytz.country_names[code]), cities))
    groups.sort(key=lambda group: _sort_key(group[0]))
    return (("UTC", (("UTC", "UTC"),)), *groups)


def _when(moment: datetime, zone: ZoneInfo, lang: str, labels: Mapping[str, str],
          first: str) -> dict[str, str]:
    local = to_utc(moment).astimezone(zone)
    return {"date": full_date(local, lang, first), "time": local_time(local, lang),
            "offset": format_offset(local.utcoffset()), "city": zone_label(zone.key, lang, labels),
            "iso": to_utc(moment).isoformat()}


def _row(occurrence: Occurrence, slug: str, reader: ZoneInfo, lang: str,
         labels: Mapping[str, str], first: str) -> dict[str, Any]:
    """One occurrence for the page; `first`: how `lang` writes the first of a month."""
    anchor = occurrence.zone
    row: dict[str, Any] = {
        "status": occurrence.status.value,
        "reader": _when(occurrence.start, reader, lang, labels, first),
        "end": _when(occurrence.end, reader, lang, labels, first),
        "anchor": (_when(occurrence.start, anchor, lang, labels, first)
                   if anchor.key != reader.key else None),
        "moved_from": (_when(occurrence.id, reader, lang, labels, first)
                       if occurrence.status is Status.MOVED else None),
        "agenda": occurrence.agenda,  # its own agenda (Markdown), else None: the call's
        "ics": f"/calls/{slug}/{occurrence.id.astimezone(UTC):{STAMP}}.ics",
    }
    return row


def feed_links(settings: Settings, slug: str) -> dict[str, str]:
    """Subscribe by URL: https, webcal (Apple, Outlook, Thunderbird) and Google Calendar."""
    https = settings.feed_url(slug)
    webcal = "webcal://" + https.split("://", 1)[1]
    return {"https": https, "webcal": webcal,
            "google": "https://calendar.google.com/calendar/render?cid=" + quote(webcal, safe="")}


def page(session: Session, settings: Settings, *, now: datetime, reader: ZoneInfo,
         lang: str) -> list[dict[str, Any]]:
    """Every call with an occurrence still to come, soonest first. A stored call that cannot
    be shown (a row an older version stored) is left out with a warning; the others are not."""
    calls = []
    changes = all_changes(session)
    first = first_of_month(lang, settings.template_folders)
    for call in list_calls(session):
        try:
            found = occurrences(series_of(call), changes.get(call.id or 0, {}), start=now,
                                count=PER_CALL)
            rows = [_row(o, call.slug, reader, lang, settings.labels, first) for o in found]
        except Exception as e:  # whatever one stored call raises must not blank the page
            skipped(log, call, "the members' page entry", e)
            continue
        if not found:
            continue
        calls.append({
            "slug": call.slug, "title": call.title, "description": call.description,
            "register_url": call.register_url, "feed": feed_links(settings, call.slug),
            "occurrences": rows, "next": found[0].start,
        })
    calls.sort(key=lambda c: (c["next"], c["title"]))
    return calls


def named_occurrence(session: Session, slug: str, stamp: str) -> tuple[Call, CallEvent,
                                                                       Occurrence]:
    """The call `slug` and its occurrence whose original start is `stamp` (`STAMP`, as URLs
    name it); `InvalidValue` for a stamp that is no time, `NotFound` for no such occurrence."""
    try:
        original = datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
    except ValueError as e:
        raise InvalidValue(f"{stamp!r} is not an occurrence (YYYYMMDDTHHMMSSZ)") from e
    call = get_call(session, slug)
    event = call_event(call, changes_of(session, call))
    if next(event.series.originals(original), None) != original:
        raise NotFound(f"{call.title} has no occurrence at {original:%Y-%m-%d %H:%M} UTC")
    return call, event, occurrence_at(original, event.series, event.changes.get(original))


def occurrence_ics(session: Session, slug: str, stamp: str) -> tuple[bytes, Occurrence]:
    """One occurrence as its own small calendar, for "Add to calendar"."""
    _, event, occurrence = named_occurrence(session, slug, stamp)
    return ics.single(event, occurrence), occurrence
