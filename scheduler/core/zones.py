"""Time zones: looking names up, and turning a wall time into an instant.

The DST policy, written down once:

* **A wall time that does not exist** (it falls in a spring-forward gap, such as 02:30 on
  10 March 2019 in America/New_York) is refused where a person typed it: a call's first start,
  or the new time of a moved occurrence. `NonexistentLocalTime` names the gap and the times on
  either side of it.
* **A wall time that happens twice** (fall-back, such as 01:30 on 4 November 2018 in New York)
  is refused the same way, with `AmbiguousLocalTime` naming both instants.
* **A recurrence instance** that lands in a gap or a repeat, although its anchor did not (a
  weekly 02:30 call whose later week crosses a change), follows RFC 5545 section 3.3.5, which is
  also what calendar clients do with our feeds: in a gap the offset from *before* the gap is
  used (02:30 becomes 03:30 summer time); a repeated time means its *first* instant. Python's
  `fold=0` gives exactly this, so `resolve_recurring` is a plain `replace(tzinfo=zone)`.

**The years this service handles** are 1900 to 2199 (`FIRST_YEAR`, `END_YEAR`): a call's start,
a move's new time and an RRULE's UNTIL are refused outside them where they are typed
(`within_years`), and a rule without an end is expanded no further than `END_YEAR`
(`before_end`). Outside them, Python's datetime overflows at the year 9999 as soon as an end,
an offset or a window is added to a time. Inside them, each part works (tests/test_far_values.py
tries both ends): zoneinfo (after 2037 each zone's rules come from its POSIX footer), dateutil,
Babel, SQLite (and PostgreSQL, whose timestamps reach far wider); the VTIMEZONEs of
`scheduler.core.vtimezone` (every zone's every change from 1900 on is found and read back by
icalendar; a call after 2090 gets one that starts in 2090, so that its summer-time rules are
there); and ical.js, Thunderbird's parser, which reads feeds of both ends as we do, except
that it drops the seconds of the local mean times some zones kept into the 20th century
(Jakarta was +07:07:12 until 1923): such a call is seconds off there.

Zone data comes from the `tzdata` package, not the operating system, so that every machine
computes with the same, current rules (Egypt brought summer time back in 2023; an old OS would
not know). `pytz` is used only for what `zoneinfo` lacks: country to zones, for zone pickers.
"""

from __future__ import annotations

import difflib
import importlib.resources
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from functools import cache

import pytz

from scheduler.errors import AmbiguousLocalTime, InvalidValue, InvalidZone, NonexistentLocalTime

FIRST_YEAR = 1900
END_YEAR = 2200  # the first year not handled

# Ignore the operating system's zoneinfo: read the tzdata package only (see module docstring).
zoneinfo.reset_tzpath(to=[])

# Names that are valid in the tz database but almost never what an organizer means: fixed
# offsets that never change for summer time, or POSIX-style rules that only follow US law.
_MISLEADING = {
    "EST": ("a fixed UTC-05:00 offset without summer time", "America/New_York"),
    "MST": ("a fixed UTC-07:00 offset without summer time", "America/Denver"),
    "HST": ("a fixed UTC-10:00 offset", "Pacific/Honolulu"),
    "EST5EDT": ("a POSIX rule, not a place", "America/New_York"),
    "CST6CDT": ("a POSIX rule, not a place", "America/Chicago"),
    "MST7MDT": ("a POSIX rule, not a place", "America/Denver"),
    "PST8PDT": ("a POSIX rule, not a place", "America/Los_Angeles"),
    "Factory": ("a placeholder, not a place", ""),
    "localtime": ("the machine's own setting, which differs between machines", ""),
}


@cache
def all_zone_names() -> frozenset[str]:
    """Every IANA zone name the tzdata package knows."""
    return frozenset(zoneinfo.available_timezones() - set(_MISLEADING))


@cache
def _links() -> dict[str, str]:
    """Each name tzdata keeps as a link (Asia/Calcutta), and the zone it points to
    (Asia/Kolkata): the `L` lines of the package's own zic input, which carry the `backward`
    file's old names and the zones merged since."""
    data = importlib.resources.files("tzdata").joinpath("zoneinfo", "tzdata.zi")
    links = {}
    for line in data.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "L":
            links[parts[2]] = parts[1]
    return links


@cache
def picker_names() -> frozenset[str]:
    """The names a zone picker lists: every country's zones (pytz's copy of the tz database's
    country table) that tzdata knows, and UTC."""
    listed = {zone for zones in pytz.country_timezones.values() for zone in zones}
    return frozenset(listed & all_zone_names()) | {"UTC"}


def current_name(name: str) -> str:
    """The name a zone picker lists for `name`: the name itself when listed, else for an old
    name the zone it now links to (browsers still report Asia/Calcutta, Europe/Kiev,
    Asia/Saigon: Asia/Kolkata, Europe/Kyiv, Asia/Ho_Chi_Minh); any other name unchanged."""
    found = name
    for _ in range(3):  # zic links point at zones; a step or two covers any chain
        if found in picker_names():
            return found
        target = _links().get(found)
        if target is None:
            break
        found = target
    return name


def suggest(name: str, limit: int = 3) -> list[str]:
    """The zone names closest to a misspelled one, best first."""
    names = all_zone_names()
    by_lower = {n.lower(): n for n in names}
    if name.lower() in by_lower:
        return [by_lower[name.lower()]]
    # Compare the city part too, so "New York" and "new_york" find America/New_York.
    wanted = name.strip().replace(" ", "_").lower()
    cities = {n.rsplit("/", 1)[-1].lower(): n for n in names}
    matches = difflib.get_close_matches(wanted, list(by_lower), n=limit, cutoff=0.6)
    matches += difflib.get_close_matches(wanted, list(cities), n=limit, cutoff=0.75)
    found = [by_lower.get(m) or cities[m] for m in matches]
    return sorted(dict.fromkeys(found), key=lambda n: -difflib.SequenceMatcher(
        None, wanted, n.lower()).ratio())[:limit]


def get_zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone called `name`, or `InvalidZone` with the closest real names."""
    if name in _MISLEADING:
        reason, better = _MISLEADING[name]
        raise InvalidZone(name, [better] if better else [], f"time zone {name!r} is {reason}")
    if name not in all_zone_names():
        raise InvalidZone(name, suggest(name))
    return zoneinfo.ZoneInfo(name)


def within_years(moment: date, *, what: str, typed: str | None = None) -> None:
    """Refuse a date or a wall time (or an instant, by its own year) outside the years this
    service handles; `what` names the field ("--start"), `typed` is the value as given."""
    if not FIRST_YEAR <= moment.year < END_YEAR:
        shown = typed or (moment.replace(tzinfo=None).isoformat(" ", "minutes")
                          if isinstance(moment, datetime) else moment.isoformat())
        raise InvalidValue(f"{what}: {shown} is outside the years this service handles "
                           f"({FIRST_YEAR} to {END_YEAR - 1})")


def before_end(moment: datetime) -> bool:
    """True when a wall time (aware in its own zone, or naive) is before `END_YEAR`."""
    return moment.year < END_YEAR


def is_nonexistent(wall: datetime, zone: zoneinfo.ZoneInfo) -> bool:
    """True when the naive wall time falls in a spring-forward gap of `zone`."""
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall


def is_ambiguous(wall: datetime, zone: zoneinfo.ZoneInfo) -> bool:
    """True when the naive wall time happens twice in `zone` (a fall-back repeat)."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    return first.utcoffset() != second.utcoffset() and not is_nonexistent(wall, zone)


def _gap_around(wall: datetime, zone: zoneinfo.ZoneInfo) -> tuple[datetime, datetime]:
    """The wall times just before and after the spring-forward jump that swallows `wall`."""
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)  # read with the later offset
    high = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)  # read with the earlier offset
    low, high = min(low, high), max(low, high)
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):  # bisect for the instant the offset changes
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    jump_from = high.astimezone(zone).replace(tzinfo=None) - (
        high.astimezone(zone).utcoffset() - before  # type: ignore[operator]
    )
    return jump_from, high.astimezone(zone).replace(tzinfo=None)


def _describe(instant: datetime, zone: zoneinfo.ZoneInfo) -> str:
    local = instant.astimezone(zone)
    return f"{local:%H:%M} {local.tzname()} ({instant.astimezone(UTC):%H:%M} UTC)"


def localize_strict(wall: datetime, zone: zoneinfo.ZoneInfo, *, what: str = "time") -> datetime:
    """A wall time typed by a person, as an aware datetime; refuses gaps and repeats.

    `what` names the field in the error message ("--start", "--to"). A wall time outside the
    years this service handles is refused first (`within_years`).
    """
    if wall.tzinfo is not None:
        raise ValueError("localize_strict takes a naive wall time")
    within_years(wall, what=what)
    if is_nonexistent(wall, zone):
        jump_from, jump_to = _gap_around(wall, zone)
        fmt = "%H:%M" if jump_from.date() == jump_to.date() else "%Y-%m-%d %H:%M"
        raise NonexistentLocalTime(
            f"{what} {wall:%Y-%m-%d %H:%M} does not exist in {zone.key}: clocks jump "
            f"from {jump_from:{fmt}} to {jump_to:{fmt}}; choose a time outside that gap"
        )
    if is_ambiguous(wall, zone):
        first = wall.replace(tzinfo=zone, fold=0)
        second = wall.replace(tzinfo=zone, fold=1)
        raise AmbiguousLocalTime(
            f"{what} {wall:%Y-%m-%d %H:%M} happens twice in {zone.key} as clocks fall back: "
            f"first at {_describe(first, zone)}, then at {_describe(second, zone)}; "
            "choose another time"
        )
    return wall.replace(tzinfo=zone)


def resolve_recurring(wall: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """A recurrence instance's wall time as an aware datetime, by RFC 5545 section 3.3.5."""
    return wall.replace(tzinfo=zone, fold=0)


def to_utc(moment: datetime) -> datetime:
    """An aware datetime as UTC; a naive one is a bug and raises `ValueError`."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r} where an instant was expected")
    return moment.astimezone(UTC)
