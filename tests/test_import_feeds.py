"""Feeds are written by ics.py's own writer, fast enough for the 10,000 calls of a large
import (each in its own feed and in all.ics), and byte for byte what icalendar writes: the
feeds of calls imported before keep their ETags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core import ics
from scheduler.core.recurrence import Change, Series

ZONES = ["America/New_York", "Europe/Brussels", "UTC", "Asia/Kathmandu", "Etc/GMT+5",
         "America/Argentina/Buenos_Aires", "Pacific/Chatham"]
TEXT = st.lists(st.sampled_from([*"abc XYZ,;:\\\"'\n\r\té€😀^N", "\\N", "word " * 9]),
                max_size=60).map("".join)
ONE_LINE = TEXT.map(lambda text: " ".join(text.split()))  # a title, a feed's name
URL = st.sampled_from([None, "https://example.org/r", "https://example.org/a,b;c?x=1&y=2"])


def icalendar_feed(calls: list[ics.CallEvent], *, name: str, url: str, timezone: str,
                   refresh: timedelta) -> bytes:
    """The feed as icalendar writes it, the way ics.feed did before it had a writer of its
    own."""
    import uuid

    from icalendar.prop import vDuration

    events = []
    for call in sorted(calls, key=lambda c: c.uid):
        events.append(ics.master(call))
        events.extend(ics.overrides(call))
    return ics._calendar(calls, events, method="PUBLISH", properties={
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, url)), "name": name, "x-wr-calname": name,
        "x-wr-timezone": timezone, "refresh-interval": vDuration(refresh,
                                                                params={"VALUE": "DURATION"}),
        "x-published-ttl": vDuration(refresh), "source": url, "url": url})


@st.composite
def call_events(draw: st.DrawFn) -> ics.CallEvent:
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    wall = draw(st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2150, 1, 1)))
    start = wall.replace(microsecond=0, tzinfo=zone)
    rrule = draw(st.sampled_from([None, "FREQ=WEEKLY", "FREQ=MONTHLY;BYDAY=2TU;COUNT=5",
                                  "FREQ=DAILY;UNTIL=21000101T000000Z"]))
    series = Series(start=start, duration=timedelta(minutes=draw(st.integers(1, 1440))),
                    rrule=rrule)
    changes = {}
    for offset in draw(st.lists(st.integers(0, 60), max_size=3, unique=True)):
        original = (start + timedelta(weeks=offset)).astimezone(UTC)
        agenda = draw(st.one_of(st.none(), TEXT.filter(bool)))  # its own DESCRIPTION
        kind = draw(st.sampled_from(["cancelled", "moved", "agenda"]))
        if kind == "cancelled":
            changes[original] = Change(original=original, cancelled=True, agenda=agenda)
        elif kind == "moved":  # minutes, so that some land on the second of a repeated hour
            moved = original + timedelta(minutes=draw(st.integers(-3000, 3000)))
            changes[original] = Change(original=original, start=moved, agenda=agenda)
        else:
            changes[original] = Change(original=original, agenda=agenda or "agenda")
    if rrule is None:
        changes = {k: v for k, v in changes.items() if k == start.astimezone(UTC)}
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 10**8)))
    return ics.CallEvent(
        uid=draw(st.sampled_from(["a@x", "b,c;d@x", "7kukuqrfedlm2f9t0vr42e4j0g@google.com"])),
        title=draw(TEXT) or "t", description=draw(TEXT), register_url=draw(URL),
        join_url=draw(URL), series=series, changes=changes, sequence=draw(st.integers(0, 99)),
        created=when, updated=when + timedelta(days=1))


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(call_events(), min_size=1, max_size=3), name=ONE_LINE,
       refresh=st.sampled_from([timedelta(hours=6), timedelta(minutes=90), timedelta(days=1)]))
def test_feed_is_what_icalendar_writes(calls: list[ics.CallEvent], name: str,
                                       refresh: timedelta) -> None:
    options = {"name": name or "n", "url": "https://example.org/calendars/all.ics",
               "timezone": "America/New_York", "refresh": refresh}
    assert ics.feed(calls, **options) == icalendar_feed(calls, **options)  # type: ignore[arg-type]


def test_feed_with_a_move_to_the_second_of_a_repeated_hour_is_what_icalendar_writes() -> None:
    """The move is written in UTC (01:30 with a TZID would be the first 01:30); texts with
    every character TEXT escapes; a one-off anchored in UTC."""
    new_york = ZoneInfo("America/New_York")
    start = datetime(2018, 10, 28, 1, 30, tzinfo=new_york)
    moved, cancelled = (start.astimezone(UTC) + timedelta(weeks=n) for n in (1, 2))
    text = 'a,b;c\\d\\Ne\nf "q" é😀 ' * 4
    when = datetime(2026, 1, 1, tzinfo=UTC)
    weekly = ics.CallEvent(
        uid="b,c;d@x", title=" ".join(text.split()), description=text,
        register_url="https://example.org/a,b;c?x=1", join_url="https://example.org/j",
        series=Series(start=start, duration=timedelta(hours=1), rrule="FREQ=WEEKLY"),
        changes={moved: Change(original=moved, start=datetime(2018, 11, 4, 6, 30, tzinfo=UTC)),
                 cancelled: Change(original=cancelled, cancelled=True)},
        sequence=3, created=when, updated=when)
    in_utc = ics.CallEvent(
        uid="u", title="x", description="", register_url=None, join_url=None,
        series=Series(start=datetime(2030, 1, 1, 10, tzinfo=ZoneInfo("UTC")),
                      duration=timedelta(hours=1)), sequence=0, created=when, updated=when)
    options = {"name": "Coalition, calls; all", "url": "https://example.org/calendars/all.ics",
               "timezone": "America/New_York", "refresh": timedelta(hours=6)}
    written = ics.feed([weekly, in_utc], **options)  # type: ignore[arg-type]
    assert written == icalendar_feed([weekly, in_utc], **options)  # type: ignore[arg-type]
    assert b"DTSTART:20181104T063000Z\r\n" in written
