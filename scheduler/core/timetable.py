"""One occurrence's time in many zones and languages, and the words around it. Pure.

Babel formats times, dates, city names and durations from CLDR ("10:00 AM", "16:00",
"mardi 13 novembre 2018", "Le Caire", "dans 20 minutes"). Two things are ours: UTC offsets,
because Babel prints St John's (UTC-03:30) as "GMT-04:30", and the narrow no-break space CLDR
puts in "10:00 AM", which we turn into a plain space so texts read and search as typed.

CLDR writes the first of the month as a plain "1" ("jeudi 1 novembre"); where a language
writes it otherwise ("1er" in French, "1º" in Portuguese) the caller passes that as `first`
(the catalogs hold it), and it takes the day's place in the date.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import (
    format_date,
    format_datetime,
    format_skeleton,
    format_time,
    format_timedelta,
    get_date_format,
    get_timezone_location,
    match_skeleton,
    tokenize_pattern,
    untokenize_pattern,
)

from scheduler.core.zones import get_zone, to_utc

NARROW_NBSP = "\u202f"


def _plain(text: str) -> str:
    return text.replace(NARROW_NBSP, " ")


def format_offset(offset: timedelta | None) -> str:
    """UTC-03:30, UTC+05:45, UTC+00:00 (with a real minus sign)."""
    seconds = int((offset or timedelta(0)).total_seconds())
    sign = "\u2212" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def zone_label(zone: str, lang: str, labels: Mapping[str, str] | None = None) -> str:
    """A city name for a zone: the configured label, else CLDR's city in `lang`."""
    if labels and zone in labels:
        return labels[zone]
    city: str = get_timezone_location(ZoneInfo(zone), locale=lang, return_city=True)
    return city.rsplit("/", 1)[-1]  # CLDR has no city for some zones: Babel gives a path


def local_time(moment: datetime, lang: str) -> str:
    return _plain(format_time(moment, "short", locale=lang))


def _first_day(pattern: str, first: str) -> str:
    """A CLDR date pattern with its day of the month written as `first`."""
    tokens = tokenize_pattern(pattern)
    return untokenize_pattern([("chars", first) if kind == "field" and value[0] == "d"
                               else (kind, value) for kind, value in tokens])


def full_date(moment: datetime, lang: str, first: str = "1") -> str:
    """"Tuesday, November 13, 2018"; `first`: how the first of a month is written."""
    if moment.day != 1 or first == "1":
        return _plain(format_date(moment, "full", locale=lang))
    pattern = _first_day(get_date_format("full", locale=lang).pattern, first)
    return _plain(format_date(moment, pattern, locale=lang))


def short_date(moment: datetime, lang: str, first: str = "1") -> str:
    """"Tue, November 13"."""
    if moment.day != 1 or first == "1":
        return _plain(format_skeleton("MMMMEd", moment, locale=lang))
    skeletons = Locale.parse(lang).datetime_skeletons
    found = skeletons[match_skeleton("MMMMEd", skeletons) or "MMMMEd"]
    return _plain(format_datetime(moment, _first_day(found.pattern, first), locale=lang))


@dataclass(frozen=True, kw_only=True)
class ZoneRow:
    """One line of the time table."""

    zone: str
    label: str
    local: datetime
    time: str
    date: str
    offset: str
    day: str  # the short weekday and date ("Wed, Nov 14"), for a table that dates every row
    other_day: str | None  # the same, only when it is not the anchor's date

    def as_dict(self) -> dict[str, Any]:
        return {"zone": self.zone, "label": self.label, "local": self.local.isoformat(),
                "time": self.time, "date": self.date, "offset": self.offset, "day": self.day,
                "other_day": self.other_day}


def time_table(
    start: datetime, zones: Sequence[str], *, anchor: ZoneInfo, lang: str,
    labels: Mapping[str, str] | None = None, first: str = "1",
) -> list[ZoneRow]:
    """`start` in each zone, marking the rows whose date differs from the anchor zone's
    (`other_day`); every row has its short date too (`day`), for a message whose first row,
    the reader's, is on another day than the call's: then every row shows its day, or the
    rows without one would read as the reader's day."""
    anchor_date = to_utc(start).astimezone(anchor).date()
    rows = []
    for name in zones:
        local = to_utc(start).astimezone(get_zone(name))
        day = short_date(local, lang, first)
        rows.append(ZoneRow(
            zone=name, label=zone_label(name, lang, labels), local=local,
            time=local_time(local, lang), date=full_date(local, lang, first),
            offset=format_offset(local.utcoffset()), day=day,
            other_day=day if local.date() != anchor_date else None,
        ))
    return rows


@dataclass(frozen=True, kw_only=True)
class Timing:
    """How far off the start is, seen from `now` in the reader's zone."""

    minutes_until: int
    days_until: int  # calendar days in the reader's zone: 0 today, 1 tomorrow
    starts_in: str  # "in 20 minutes", "dans 3 heures", "20 minutes ago"

    def as_dict(self) -> dict[str, Any]:
        return {"minutes_until": self.minutes_until, "days_until": self.days_until,
                "starts_in": self.starts_in}


def timing(start: datetime, now: datetime, reader: ZoneInfo, lang: str) -> Timing:
    delta = to_utc(start) - to_utc(now)
    minutes = round(delta.total_seconds() / 60)
    days = (to_utc(start).astimezone(reader).date() - to_utc(now).astimezone(reader).date()).days
    # threshold=2: under two hours it counts minutes ("in 90 minutes", not "in 2 hours")
    words = format_timedelta(timedelta(minutes=minutes), add_direction=True, threshold=2,
                             locale=lang)
    return Timing(minutes_until=minutes, days_until=days, starts_in=_plain(words))


def google_calendar_url(*, title: str, start: datetime, end: datetime, details: str,
                        location: str = "") -> str:
    """Google Calendar's "add event" link (the event-template URL)."""
    stamp = "%Y%m%dT%H%M%SZ"
    query = {
        "action": "TEMPLATE", "text": title,
        "dates": f"{to_utc(start):{stamp}}/{to_utc(end):{stamp}}",
        "details": details,
    }
    if location:
        query["location"] = location
    return "https://calendar.google.com/calendar/render?" + urlencode(query)


def discourse_date(start: datetime, zones: Sequence[str]) -> str:
    """Discourse's local-dates markup: every reader sees the time in their own zone."""
    utc = to_utc(start).astimezone(UTC)
    return (f'[date={utc:%Y-%m-%d} time={utc:%H:%M:%S} timezone="UTC" '
            f'timezones="{"|".join(zones)}"]')
