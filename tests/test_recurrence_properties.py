"""Property: every occurrence happens at the anchor's wall time in the anchor's zone.

Checked across DST changes in both hemispheres and in zones with 30- and 45-minute offsets, and
against pytz (an independent implementation with its own copy of the tz database) for the UTC
instant. An instance that falls in a gap follows RFC 5545 (the offset from before the gap).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytz
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from scheduler.core.recurrence import Series, occurrences
from scheduler.core.zones import is_ambiguous, is_nonexistent

ZONES = [
    "America/New_York", "Europe/Brussels", "Africa/Cairo", "Asia/Jakarta",  # the coalition's
    "Australia/Sydney", "America/Santiago", "Pacific/Auckland",  # southern hemisphere DST
    "Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide", "Australia/Eucla",  # :30, :45
    "America/St_Johns", "Pacific/Chatham", "Australia/Lord_Howe",  # :30 DST, :45 DST, 30-min DST
    "Asia/Tehran", "America/Havana", "Europe/London", "Pacific/Kiritimati",
]
RULES: dict[str, Callable[[datetime], str]] = {
    "weekly": lambda start: "FREQ=WEEKLY",
    "every-3-days": lambda start: "FREQ=DAILY;INTERVAL=3",
    "monthly-nth-weekday": lambda start: (
        f"FREQ=MONTHLY;BYDAY={(start.day - 1) // 7 + 1}"
        f"{['MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'][start.weekday()]}"
    ),
    "monthly-by-date": lambda start: "FREQ=MONTHLY",
    "yearly": lambda start: "FREQ=YEARLY",
}


PYTZ_LAST_YEAR = 2037


def offset_before(wall: datetime, zone: ZoneInfo) -> timedelta:
    """The offset in force a day before `wall`: before any gap that swallows it."""
    offset = (wall - timedelta(days=1)).replace(tzinfo=zone).utcoffset()
    assert offset is not None
    return offset


@settings(max_examples=200, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    anchor=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31)),
    minute=st.sampled_from([0, 15, 30, 45]),
    rule_name=st.sampled_from(sorted(RULES)),
)
# Havana skips 00:00-01:00 on 10 March 2019; Lord Howe skips 02:00-02:30 on 6 October 2019;
# New York repeats 01:00-02:00 on 4 November 2018.
@example(zone_name="America/Havana", anchor=datetime(2019, 3, 3), minute=30, rule_name="weekly")
@example(zone_name="Australia/Lord_Howe", anchor=datetime(2019, 9, 29, 2), minute=15,
         rule_name="weekly")
@example(zone_name="America/New_York", anchor=datetime(2018, 10, 28, 1), minute=30,
         rule_name="weekly")
def test_every_occurrence_keeps_the_anchor_wall_time(
    zone_name: str, anchor: datetime, minute: int, rule_name: str
) -> None:
    zone = ZoneInfo(zone_name)
    wall = anchor.replace(minute=minute, second=0, microsecond=0)
    assume(not is_nonexistent(wall, zone) and not is_ambiguous(wall, zone))
    assume(rule_name != "monthly-by-date" or wall.day <= 28)
    series = Series(start=wall.replace(tzinfo=zone), duration=timedelta(hours=1),
                    rrule=RULES[rule_name](wall))
    found = occurrences(series, {}, start=wall.replace(tzinfo=zone), count=40)

    assert len(found) == 40
    assert all(a.start < b.start for a, b in itertools.pairwise(found))
    for occurrence in found:
        local = occurrence.start.astimezone(zone)
        original_wall = datetime.combine(local.date(), wall.time())
        if is_nonexistent(original_wall, zone):  # RFC 5545 3.3.5: offset from before the gap
            expected = (original_wall - offset_before(original_wall, zone)).replace(tzinfo=UTC)
            assert occurrence.start == expected
            continue
        assert local.time() == wall.time()
        # pytz's compiled tables end in 2037, so it can only serve as the oracle before then.
        if local.year < PYTZ_LAST_YEAR:
            # A repeated wall time means its first instant: the summer-time one.
            is_dst = True if is_ambiguous(original_wall, zone) else None
            oracle = pytz.timezone(zone_name).localize(original_wall, is_dst=is_dst)
            assert occurrence.start == oracle.astimezone(pytz.utc)
