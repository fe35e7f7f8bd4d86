"""One event of an .ics file as the call it would become, or why it cannot be one. Pure.

`CalendarReader(calendar).plan(event, overrides, language=...)` reads a VEVENT (and the
RECURRENCE-ID overrides of its UID) as an `ImportPlan`, or raises `Unusable` with the reason,
which the importer lists beside the event. The policy (see also `scheduler.importer`):

* DTSTART must be a date and time in a known zone: an all-day event (a holiday, a birthday,
  a note) or a floating time (when no X-WR-TIMEZONE names the calendar's zone) is no call. A
  TZID may be an IANA name, a Windows name ("W. Europe Standard Time"), an IANA name at the
  end of a path ("/mozilla.org/20050126_1/Europe/Berlin"), any of them in another case, or
  the name of a VTIMEZONE of the file whose X-LIC-LOCATION is an IANA name. Google writes UTC
  and names the zone in X-WR-TIMEZONE: such times are read in that zone.
* A wall time that does not exist or happens twice follows RFC 5545 3.3.5, as calendar
  clients do: in a gap it is read with the offset from before the gap (later by the gap's
  length; a one-off is stored at that later time, a series keeps its wall time for the later
  occurrences), a repeated one is the first; the plan's notes say so. A time given in UTC is
  exact: one that is the second of a repeated wall time is kept in UTC for a one-off, and as a
  move of the first occurrence in a series (a stored wall time means the first).
* One RRULE at most (no EXRULE); it makes at most one occurrence an hour, and every check
  against it is bounded (`scheduler.core.recurrence`).
* An EXDATE that matches no occurrence is ignored, as RFC 5545 clients do (Outlook leaves them
  after a series is edited), and counted in the notes; one that is a date cancels that day's
  occurrences. An RDATE the rule already makes adds nothing; one whose nearest occurrence is
  cancelled becomes that occurrence's move (some clients write a move so); any other makes the
  event unusable, as a call holds no dates beyond its rule.
* An override of an occurrence the rule does not make, or that cannot be read, is left out
  with a note. One whose DESCRIPTION differs from the series' (Google and Outlook write a
  month's own agenda so) keeps that DESCRIPTION as the occurrence's agenda, moved or not;
  one that changes only other text (its SUMMARY, say) changes nothing.
* SUMMARY and DESCRIPTION lose their control characters (noted); a SUMMARY longer than a title
  may be is cut (noted); a DTEND before DTSTART across a gap is read as wall times.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from slugify import slugify

from scheduler.core import icsread, inputs
from scheduler.core.icsread import Component, Property
from scheduler.core.recurrence import Change, Series, last_before, normalize_rrule, which_occur
from scheduler.core.zones import (
    all_zone_names,
    get_zone,
    is_ambiguous,
    is_nonexistent,
    resolve_recurring,
    to_utc,
    within_years,
)
from scheduler.errors import InvalidZone, SchedulerError

MAX_UID = 255


class Unusable(SchedulerError):
    """This event cannot be a call (the message is the reason)."""


@dataclass(kw_only=True)
class NewCall:
    """A call as the file gives it, not stored yet (its slug is chosen when it is)."""

    uid: str
    slug: str = ""
    title: str
    description: str
    timezone: str
    start_local: str  # wall time of the first start, "YYYY-MM-DDTHH:MM:SS"
    duration_minutes: int
    rrule: str | None
    register_url: str | None
    join_url: str | None
    language: str


@dataclass(kw_only=True)
class ImportPlan:
    """One event of the file as the call it becomes, with its moves and cancellations, and
    what was read otherwise than written (`notes`)."""

    call: NewCall
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    line: int = 0


class CalendarReader:
    """Reads the events of one VCALENDAR: its X-WR-TIMEZONE, and the zones its TZIDs name."""

    def __init__(self, calendar: Component) -> None:
        self.calendar = calendar
        self.zones: dict[str, ZoneInfo | str] = {}  # TZID: its zone, or why there is none
        self.locations = {  # VTIMEZONE TZID: the IANA name its X-LIC-LOCATION gives
            tz.first("TZID").value.strip(): tz.first("X-LIC-LOCATION").value.strip()  # type: ignore[union-attr]
            for tz in calendar.components
            if tz.name == "VTIMEZONE" and tz.first("TZID") and tz.first("X-LIC-LOCATION")}
        wr = calendar.first("X-WR-TIMEZONE")
        self.default: ZoneInfo | str | None = None
        if wr is not None and icsread.text(wr.value).strip():
            found = self.zone(icsread.text(wr.value))
            self.default = found if isinstance(found, ZoneInfo) else f"X-WR-TIMEZONE: {found}"

    def zone(self, tzid: str) -> ZoneInfo | str:
        """The IANA zone a TZID names, or why it names none."""
        name = tzid.strip()
        if name not in self.zones:
            self.zones[name] = _find_zone(name, self.locations.get(name))
        return self.zones[name]

    def moment(self, value: str, params: Mapping[str, str], what: str,
               ) -> tuple[date | datetime, bool]:
        """A DATE, or a DATE-TIME as an aware datetime in its zone, and whether it was given
        as an instant (in UTC: exact) rather than a wall time (fold 0: RFC 5545's reading)."""
        try:
            read = icsread.moment(value)
        except ValueError as e:
            raise Unusable(f"{what}: {e}") from e
        if not isinstance(read, datetime):
            return read, False
        if read.tzinfo is not None:  # UTC: an instant, shown in the calendar's zone if any
            if isinstance(self.default, str):
                raise Unusable(self.default)
            try:
                moment = (read.astimezone(self.default) if self.default is not None
                          else read.replace(tzinfo=get_zone("UTC")))
            except OverflowError:
                moment = read
            within_years(moment, what=what)
            return moment, True
        within_years(read, what=what)
        tzid = params.get("TZID")
        if tzid:
            zone_or_why = self.zone(tzid)
            if isinstance(zone_or_why, str):
                raise Unusable(f"TZID {shown(tzid)}: {zone_or_why}")
            return read.replace(tzinfo=zone_or_why), False
        if isinstance(self.default, str):
            raise Unusable(self.default)
        if self.default is None:
            raise Unusable(f"{what} has no time zone (a floating time means a different "
                            "instant to every reader)")
        return read.replace(tzinfo=self.default), False

    def time_of(self, event: Component, name: str) -> tuple[datetime, bool] | None:
        prop = event.first(name)
        if prop is None:
            return None
        found, exact = self.moment(prop.value, prop.params, name)
        if not isinstance(found, datetime):
            raise Unusable(f"{name} is a whole day (an all-day event); a call needs a start "
                            "time" if name == "DTSTART" else f"{name} is a whole day while "
                            "DTSTART has a time")
        return found, exact

    def plan(self, master: Component, overrides: list[Component], *,
             language: str) -> ImportPlan:
        """`master` (a VEVENT without RECURRENCE-ID) and its overrides as a call, or
        `Unusable`."""
        status = master.first("STATUS")
        if status is not None and status.value.strip().upper() == "CANCELLED":
            raise Unusable("it is cancelled (STATUS:CANCELLED)")
        begins = self.time_of(master, "DTSTART")
        if begins is None:
            raise Unusable("it has no DTSTART")
        rules = master.every("RRULE")
        if len(rules) > 1:
            raise Unusable(f"it has {len(rules)} RRULEs; a call follows one")
        if master.first("EXRULE") is not None:
            raise Unusable("EXRULE (which RFC 5545 dropped) is not supported")
        notes: list[str] = []
        first, exact = begins
        wall, zone, first_move = _anchor(first, exact, recurring=bool(rules), notes=notes)
        start = resolve_recurring(wall, zone)
        rrule = normalize_rrule(rules[0].value, start) if rules else None
        minutes = self._minutes(master, first, exact)
        series = Series(start=start, duration=timedelta(minutes=minutes), rrule=rrule)
        changes: dict[datetime, Change] = {}
        if first_move is not None:
            changes[to_utc(start)] = Change(original=start, start=first_move)
        self._exdates(master, series, changes, notes)
        self._rdates(master, series, changes, notes)
        title, description = _texts(master, notes)
        self._overrides(overrides, series, changes, notes, description)
        uid = uid_of(master)
        if len(uid) > MAX_UID:
            raise Unusable(f"its UID is {len(uid)} characters long; at most {MAX_UID}")
        call = NewCall(
            uid=uid or f"{slugify(title)[:200]}-{to_utc(first):%Y%m%dT%H%M}", title=title,
            description=description, timezone=zone.key,
            start_local=wall.strftime("%Y-%m-%dT%H:%M:%S"), duration_minutes=minutes,
            rrule=rrule, register_url=_url(master.first("URL")),
            join_url=_url(master.first("LOCATION")), language=language)
        return ImportPlan(call=call, changes=sorted(changes.values(), key=lambda c: c.original),
                          notes=notes, line=master.line)

    def _minutes(self, event: Component, start: datetime, exact: bool) -> int:
        """The event's length in whole minutes, from DTEND or DURATION (one hour without)."""
        ends = self.time_of(event, "DTEND")
        duration = event.first("DURATION")
        if ends is not None:
            end, end_exact = ends
            length = to_utc(end) - to_utc(start)
            if length <= timedelta(0) and not (exact or end_exact) and end.tzinfo is start.tzinfo:
                length = end.replace(tzinfo=None) - start.replace(tzinfo=None)  # across a gap
        elif duration is not None:
            try:
                length = icsread.duration(duration.value)
            except ValueError as e:
                raise Unusable(f"DURATION {shown(duration.value)} is not a duration") from e
        else:
            length = timedelta(hours=1)
        minutes = int(length.total_seconds() // 60)
        inputs.duration(minutes, field="its length")
        return minutes

    def _dates(self, prop: Property, what: str) -> list[tuple[date | datetime, bool, str]]:
        found = []
        for item in prop.value.split(","):
            if item.strip():
                text = item.split("/")[0]  # a PERIOD's start
                moment, exact = self.moment(text, prop.params, what)
                found.append((moment, exact, item))
        return found

    def _exdates(self, master: Component, series: Series, changes: dict[datetime, Change],
                 notes: list[str]) -> None:
        wanted: list[datetime] = []
        days: list[date] = []
        for prop in master.every("EXDATE"):
            for moment, _, _ in self._dates(prop, "EXDATE"):
                if isinstance(moment, datetime):
                    wanted.append(to_utc(moment))
                else:
                    days.append(moment)
        found = which_occur(series, wanted)
        stale = len(set(wanted) - found)
        for day in days:
            begin = datetime.combine(day, datetime.min.time(), series.zone)
            on_day = {to_utc(o) for o in series.originals(begin, begin + timedelta(days=2))
                      if o.date() == day}
            found |= on_day
            stale += not on_day
        for original in found:
            changes[original] = Change(original=original, cancelled=True)
        if stale:
            notes.append(f"{stale} EXDATE{'s' if stale > 1 else ''} that match no occurrence "
                         "ignored")

    def _rdates(self, master: Component, series: Series, changes: dict[datetime, Change],
                notes: list[str]) -> None:
        added: list[tuple[datetime, timedelta | None, str]] = []
        for prop in master.every("RDATE"):
            for moment, _, item in self._dates(prop, "RDATE"):
                if not isinstance(moment, datetime):
                    raise Unusable(f"RDATE {item.strip()} is a whole day")
                added.append((to_utc(moment), _period_length(item, moment), item))
        if not added:
            return
        made = which_occur(series, [instant for instant, _, _ in added])
        for instant, length, _ in added:
            if instant in made:
                continue  # the rule makes it already (or an EXDATE cancels it)
            nearest = _nearest(series, instant)
            change = changes.get(nearest) if nearest is not None else None
            if nearest is not None and change is not None and change.cancelled:
                changes[nearest] = Change(original=nearest, start=instant, duration=length)
                notes.append(f"RDATE {_local(instant, series.zone)} stands in for the "
                             f"cancelled occurrence of {_local(nearest, series.zone)}: stored "
                             "as its move")
                continue
            raise Unusable(f"RDATE {_local(instant, series.zone)} adds an occurrence its "
                            f"{'rule' if series.rrule else 'start'} does not make; a call "
                            "holds no dates beyond its rule (import it as an event of its own)")

    def _overrides(self, overrides: list[Component], series: Series,
                   changes: dict[datetime, Change], notes: list[str],
                   description: str) -> None:
        """RECURRENCE-ID overrides as moves, cancellations and agendas (a DESCRIPTION other
        than the series' `description`); one the series cannot hold is left out, with a
        note."""
        found: list[tuple[Component, datetime]] = []
        for override in sorted(overrides, key=lambda o: o.line):
            rid = override.first("RECURRENCE-ID")
            assert rid is not None
            if rid.params.get("RANGE", "").upper() == "THISANDFUTURE":
                raise Unusable(f"line {override.line}: a change to this and all later "
                                "occurrences (RANGE=THISANDFUTURE) is not supported")
            try:
                moment, _ = self.moment(rid.value, rid.params, "RECURRENCE-ID")
            except SchedulerError as e:
                notes.append(f"its change of line {override.line} is left out: {one_line(e)}")
                continue
            if not isinstance(moment, datetime):
                notes.append(f"its change of line {override.line}, of a whole day, is left out")
                continue
            found.append((override, to_utc(moment)))
        occurring = which_occur(series, [original for _, original in found])
        for override, original in found:
            if original not in occurring:
                notes.append(f"its change of line {override.line} is left out: "
                             f"{_local(original, series.zone)} is not one of its occurrences")
                continue
            try:
                change = self._override(override, original, series, notes)
            except SchedulerError as e:  # Unusable, a time outside the years, a bad length
                notes.append(f"its change of line {override.line} is left out: {one_line(e)}")
                continue
            try:
                agenda = _agenda(override, description, notes)
            except SchedulerError as e:  # too long to be an agenda: its time still counts
                notes.append(f"the agenda of its change of line {override.line} is left out: "
                             f"{one_line(e)}")
                agenda = None
            if agenda is not None:
                change = (Change(original=original, agenda=agenda) if change is None
                          else replace(change, agenda=agenda))
            if change is None:
                changes.pop(original, None)
            else:
                changes[original] = change

    def _override(self, override: Component, original: datetime, series: Series,
                  notes: list[str]) -> Change | None:
        status = override.first("STATUS")
        if status is not None and status.value.strip().upper() == "CANCELLED":
            return Change(original=original, cancelled=True)
        begins = self.time_of(override, "DTSTART")
        if begins is None:
            raise Unusable("it has no DTSTART")
        new_start, exact = begins
        if not exact:
            _anchor(new_start, exact, recurring=False, notes=notes,
                    what=f"its change of line {override.line}")
        minutes = self._minutes(override, new_start, exact)
        same_length = minutes == int(series.duration.total_seconds() // 60)
        if to_utc(new_start) == original and same_length:
            return None  # only its text changed (its agenda, if any: `_agenda`)
        return Change(original=original, start=new_start,
                      duration=None if same_length else timedelta(minutes=minutes))


def _agenda(override: Component, description: str, notes: list[str]) -> str | None:
    """An override's DESCRIPTION as its occurrence's agenda, when it differs from the series'
    `description` (both read as `_texts` reads them); None when it is the same, or empty."""
    body = override.first("DESCRIPTION")
    if body is None:
        return None
    what = f"the DESCRIPTION of its change of line {override.line}"
    cleaned, removed = clean(icsread.text(body.value), spaced=False)
    text = inputs.plain_text(cleaned, field=what).strip()  # in NFC, as `_texts` reads it
    if not text or text == description:
        return None
    if removed:
        notes.append(f"{removed} control character{'s' if removed > 1 else ''} removed from "
                     f"{what}")
    return inputs.agenda(text, field=what)


def _anchor(moment: datetime, exact: bool, *, recurring: bool, notes: list[str],
            what: str = "its start") -> tuple[datetime, ZoneInfo, datetime | None]:
    """The wall time and zone a call is stored with, and the exact first start when that wall
    time cannot say it (the second of a repeated hour); notes say what was read otherwise than
    written."""
    zone = moment.tzinfo
    assert isinstance(zone, ZoneInfo)
    wall = moment.replace(tzinfo=None, fold=0)
    if moment.utcoffset() == moment.replace(fold=1 - moment.fold).utcoffset():
        return wall, zone, None  # the wall time happens once: nothing to read otherwise
    if exact:
        if moment.fold and is_ambiguous(wall, zone):
            utc = to_utc(moment)
            if recurring:
                notes.append(f"{what}, {utc:%Y-%m-%d %H:%M} UTC, is the second {wall:%H:%M} "
                             f"in {zone.key}: the series keeps {wall:%H:%M}, and its first "
                             "occurrence is moved to that instant")
                return wall, zone, utc
            notes.append(f"{what}, {utc:%Y-%m-%d %H:%M} UTC, is the second {wall:%H:%M} in "
                         f"{zone.key}, which a wall time there cannot tell from the first: "
                         "kept in UTC")
            return utc.replace(tzinfo=None), get_zone("UTC"), None
        return wall, zone, None
    if is_nonexistent(wall, zone):
        shifted = resolve_recurring(wall, zone).astimezone(UTC).astimezone(zone)
        later = "; its later occurrences keep " + f"{wall:%H:%M}" if recurring else ""
        notes.append(f"{what} {wall:%Y-%m-%d %H:%M} does not exist in {zone.key} (clocks jump "
                     f"forward over it): it is read as {shifted:%H:%M %Z}, as RFC 5545 says"
                     f"{later}")
        return (wall if recurring else shifted.replace(tzinfo=None)), zone, None
    if is_ambiguous(wall, zone):
        first = resolve_recurring(wall, zone)
        notes.append(f"{what} {wall:%Y-%m-%d %H:%M} happens twice in {zone.key}: it is read "
                     f"as the first, {first:%H:%M %Z}, as RFC 5545 says")
    return wall, zone, None


def _find_zone(name: str, location: str | None) -> ZoneInfo | str:
    """The IANA zone a TZID (or X-WR-TIMEZONE) names: an IANA name, a Windows name, an IANA
    name at the end of a path ("/mozilla.org/20050126_1/Europe/Berlin"), any of them in
    another case, or the X-LIC-LOCATION of the file's VTIMEZONE; or why there is none."""
    name = name.strip().strip('"')
    names = [name, WINDOWS_TO_OLSON.get(name, "")]
    parts = name.strip("/").split("/")
    names += ["/".join(parts[-n:]) for n in (3, 2) if len(parts) > n]
    names.append(location or "")
    lower = _lower_names()
    for candidate in filter(None, names):
        iana = candidate if candidate in all_zone_names() else lower.get(candidate.lower())
        if iana:
            return get_zone(iana)
    try:
        return get_zone(name)
    except InvalidZone as e:
        return str(e)


@cache
def _lower_names() -> dict[str, str]:
    return {name.lower(): name for name in all_zone_names()}


def _texts(event: Component, notes: list[str]) -> tuple[str, str]:
    """The title (SUMMARY, one line, at most `inputs.MAX_TITLE` characters) and the
    description, without control characters."""
    summary = event.first("SUMMARY")
    title, removed = clean(icsread.text(summary.value) if summary else "")
    title = inputs.one_line(title, field="SUMMARY") or "Imported call"
    if len(title) > inputs.MAX_TITLE:
        notes.append(f"its SUMMARY of {len(title)} characters is cut to {inputs.MAX_TITLE}")
        title = title[:inputs.MAX_TITLE - 1].rstrip() + "…"
    body = event.first("DESCRIPTION")
    description, also = clean(icsread.text(body.value) if body else "", spaced=False)
    if removed or also:
        notes.append(f"{removed + also} control character{'s' if removed + also > 1 else ''} "
                     "removed from its SUMMARY and DESCRIPTION")
    # one_line has made the title what inputs.title checks: not empty, short enough
    return title, inputs.plain_text(description, field="DESCRIPTION").strip()


def clean(text: str, *, spaced: bool = True) -> tuple[str, int]:
    """`text` without the control characters `inputs.plain_text` refuses (each a space when
    `spaced`), and how many there were."""
    text = text.replace("\r\n", "\n")
    cleaned, count = inputs.CONTROL.subn(" " if spaced else "", text)
    return cleaned, count


def _url(prop: Property | None) -> str | None:
    text = clean(icsread.text(prop.value))[0].strip() if prop else ""
    return text if re.match(r"https?://\S+$", text) else None


def _period_length(item: str, start: datetime) -> timedelta | None:
    """The length of an RDATE PERIOD (start/end or start/duration); None for a plain date."""
    if "/" not in item:
        return None
    end_text = item.split("/", 1)[1].strip()
    try:
        if end_text.upper().startswith(("P", "+P", "-P")):
            length = icsread.duration(end_text)
        else:
            end = icsread.moment(end_text)
            if not isinstance(end, datetime):
                raise ValueError(end_text)
            end = end if end.tzinfo else end.replace(tzinfo=start.tzinfo)
            length = to_utc(end) - to_utc(start)
    except ValueError as e:
        raise Unusable(f"RDATE {shown(item)} is not a period") from e
    inputs.duration(int(length.total_seconds() // 60), field="its RDATE's length")
    return length


def _nearest(series: Series, instant: datetime) -> datetime | None:
    """The original start nearest to `instant` (the earlier of two as near)."""
    after = next(series.originals(instant, instant + timedelta(days=400 * 30)), None)
    before = last_before(series, instant)
    found = [to_utc(o) for o in (before, after) if o is not None]
    return min(found, key=lambda o: (abs(o - instant), o)) if found else None


def uid_of(event: Component) -> str:
    """The event's UID without control characters; "" when it has none."""
    uid = event.first("UID")
    return clean(icsread.text(uid.value))[0].strip() if uid is not None else ""


def named(kind: str, component: Component) -> str:
    summary = component.first("SUMMARY")
    title = " ".join(clean(icsread.text(summary.value))[0].split()) if summary else ""
    return f"{kind} {shown(title)}" if title else kind


def name_of(event: Component) -> str:
    """"event 'Title'" for messages; an override without its own SUMMARY is named by the UID
    of the series it changes."""
    if event.first("SUMMARY"):
        return named("event", event)
    if event.first("RECURRENCE-ID") and uid_of(event):
        return f"change to the event with UID {shown(uid_of(event))}"
    return "event (no summary)"


def shown(text: str, limit: int = 80) -> str:
    """`text` quoted for a message, cut to `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit - 1] + "…")


def _local(instant: datetime, zone: ZoneInfo) -> str:
    return f"{instant.astimezone(zone):%Y-%m-%d %H:%M %Z}"


def one_line(error: Exception, limit: int = 400) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, SchedulerError):
        text = f"{type(error).__name__}: {text}"
    return text if len(text) <= limit else text[:limit - 1] + "…"


