"""Occurrences of a series with its changes, in explicit windows (no clock anywhere)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.core.recurrence import (
    Change,
    Series,
    Status,
    find_original,
    normalize_rrule,
    occurrences,
    rekey_changes,
)
from scheduler.errors import Conflict, InvalidRecurrence, NotFound

HOUR = timedelta(hours=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def monthly(new_york: ZoneInfo) -> Series:
    """The coalition's call: 2nd Tuesday, 10:00 New York, from November 2018."""
    return Series(start=datetime(2018, 11, 13, 10, tzinfo=new_york), duration=HOUR,
                  rrule="FREQ=MONTHLY;BYDAY=2TU")


def test_monthly_call_keeps_new_york_wall_time_across_the_2018_2019_dst_changes(
    monthly: Series,
) -> None:
    found = occurrences(monthly, {}, start=utc(2018, 11, 1), count=6)
    assert [o.start for o in found] == [
        utc(2018, 11, 13, 15), utc(2018, 12, 11, 15), utc(2019, 1, 8, 15),
        utc(2019, 2, 12, 15), utc(2019, 3, 12, 14), utc(2019, 4, 9, 14),
    ]
    assert {o.local_start.strftime("%a %H:%M") for o in found} == {"Tue 10:00"}


def test_weekly_call_keeps_sydney_wall_time_across_southern_dst() -> None:
    sydney = ZoneInfo("Australia/Sydney")
    series = Series(start=datetime(2019, 3, 25, 18, tzinfo=sydney), duration=HOUR,
                    rrule="FREQ=WEEKLY")
    found = occurrences(series, {}, start=utc(2019, 3, 25), count=3)
    # Sydney leaves summer time on 7 April 2019: 07:00 UTC, then 08:00 UTC.
    assert [o.start for o in found] == [utc(2019, 3, 25, 7), utc(2019, 4, 1, 7),
                                        utc(2019, 4, 8, 8)]


def test_moved_occurrence_keeps_its_id_and_is_found_at_its_new_time(monthly: Series) -> None:
    moved = Change(original=utc(2019, 2, 12, 15), start=utc(2019, 2, 19, 15))
    found = occurrences(monthly, {moved.original: moved}, start=utc(2019, 2, 1), count=2)
    assert [(o.id, o.start, o.status) for o in found] == [
        (utc(2019, 2, 12, 15), utc(2019, 2, 19, 15), Status.MOVED),
        (utc(2019, 3, 12, 14), utc(2019, 3, 12, 14), Status.CONFIRMED),
    ]


def test_occurrence_moved_into_the_window_is_listed_and_one_moved_out_is_not(
    monthly: Series,
) -> None:
    into = Change(original=utc(2019, 1, 8, 15), start=utc(2019, 2, 20, 15))
    out = Change(original=utc(2019, 2, 12, 15), start=utc(2019, 3, 1, 15))
    found = occurrences(monthly, {c.original: c for c in (into, out)},
                        start=utc(2019, 2, 13), end=utc(2019, 2, 28))
    assert [o.id for o in found] == [utc(2019, 1, 8, 15)]


def test_move_past_the_next_occurrence_reorders_the_list(monthly: Series) -> None:
    late = Change(original=utc(2019, 1, 8, 15), start=utc(2019, 2, 20, 15))
    found = occurrences(monthly, {late.original: late}, start=utc(2019, 1, 1), count=2)
    assert [o.id for o in found] == [utc(2019, 2, 12, 15), utc(2019, 1, 8, 15)]


def test_cancelled_occurrence_is_listed_and_marked(monthly: Series) -> None:
    cancel = Change(original=utc(2019, 1, 8, 15), cancelled=True)
    found = occurrences(monthly, {cancel.original: cancel}, start=utc(2019, 1, 1), count=1)
    assert (found[0].id, found[0].status) == (utc(2019, 1, 8, 15), Status.CANCELLED)


def test_moved_occurrence_may_change_its_length(monthly: Series) -> None:
    longer = Change(original=utc(2019, 1, 8, 15), duration=2 * HOUR)
    found = occurrences(monthly, {longer.original: longer}, start=utc(2019, 1, 1), count=1)
    assert found[0].end - found[0].start == 2 * HOUR


def test_one_off_call_has_exactly_one_occurrence(new_york: ZoneInfo) -> None:
    once = Series(start=datetime(2019, 5, 1, 9, tzinfo=new_york), duration=HOUR)
    assert len(occurrences(once, {}, start=utc(2000, 1, 1), count=10)) == 1
    assert occurrences(once, {}, start=utc(2019, 5, 2), count=10) == []


def test_end_of_window_is_exclusive(monthly: Series) -> None:
    found = occurrences(monthly, {}, start=utc(2018, 11, 1), end=utc(2018, 12, 11, 15))
    assert [o.id for o in found] == [utc(2018, 11, 13, 15)]


def test_until_given_as_a_date_counts_the_whole_local_day(new_york: ZoneInfo) -> None:
    start = datetime(2018, 11, 13, 10, tzinfo=new_york)
    rule = normalize_rrule("FREQ=MONTHLY;BYDAY=2TU;UNTIL=20190108", start)
    assert "UNTIL=20190109T045959Z" in rule  # 23:59:59 New York, in UTC
    found = occurrences(Series(start=start, duration=HOUR, rrule=rule), {},
                        start=utc(2018, 1, 1), count=10)
    assert found[-1].id == utc(2019, 1, 8, 15)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        pytest.param("FREQ=FORTNIGHTLY", "malformed RRULE", id="unknown-frequency"),
        pytest.param("BYDAY=TU", "FREQ is missing", id="no-frequency"),
        pytest.param("FREQ=MONTHLY;BYDAY=9TU", "out of range", id="ordinal-out-of-range"),
        pytest.param("FREQ=HOURLY", "not supported", id="sub-daily"),
        pytest.param("FREQ=MONTHLY;COUNT=2;UNTIL=20191231T000000Z", "both COUNT and UNTIL",
                     id="count-and-until"),
        pytest.param("FREQ=MONTHLY;BYDAY=2TU;UNTIL=20180101", "yields no occurrence",
                     id="until-before-start"),
        pytest.param("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "yields no occurrence",
                     id="february-30"),
        pytest.param("FREQ=MONTHLY;BYDAY=3TU", "is not an occurrence", id="start-off-rule"),
    ],
)
def test_bad_rule_is_refused_with_its_reason(rule: str, message: str, new_york: ZoneInfo) -> None:
    with pytest.raises(InvalidRecurrence, match=message):
        normalize_rrule(rule, datetime(2018, 11, 13, 10, tzinfo=new_york))


def test_start_off_the_rule_suggests_the_first_real_occurrence(new_york: ZoneInfo) -> None:
    with pytest.raises(InvalidRecurrence, match="first occurrence after that is Tue 2018-12-11"):
        normalize_rrule("FREQ=MONTHLY;BYDAY=2TU", datetime(2018, 11, 14, 10, tzinfo=new_york))


def test_occurrence_is_found_by_its_local_date(monthly: Series) -> None:
    assert find_original(monthly, date(2019, 3, 12)).astimezone(UTC) == utc(2019, 3, 12, 14)


def test_date_without_occurrence_names_the_nearest_ones(monthly: Series) -> None:
    nearest = "before is Tue 2019-02-12 10:00; the next is Tue 2019-03-12"
    with pytest.raises(NotFound, match=nearest):
        find_original(monthly, date(2019, 2, 13))


def test_day_with_two_occurrences_asks_for_the_time(new_york: ZoneInfo) -> None:
    twice = Series(start=datetime(2019, 1, 1, 9, tzinfo=new_york), duration=HOUR,
                   rrule="FREQ=DAILY;BYHOUR=9,17")
    with pytest.raises(Conflict, match="2 occurrences"):
        find_original(twice, date(2019, 1, 2))
    assert find_original(twice, datetime(2019, 1, 2, 17)).hour == 17


def test_edited_schedule_carries_changes_over_by_date(monthly: Series) -> None:
    cancel = Change(original=utc(2019, 1, 8, 15), cancelled=True)
    later = Series(start=monthly.start + HOUR, duration=HOUR, rrule=monthly.rrule)
    carried = rekey_changes(monthly, later, {cancel.original: cancel})
    assert list(carried) == [utc(2019, 1, 8, 16)]
    assert carried[utc(2019, 1, 8, 16)].cancelled


def test_edited_schedule_that_drops_a_changed_date_is_refused(monthly: Series) -> None:
    cancel = Change(original=utc(2019, 1, 8, 15), cancelled=True)
    third_tuesdays = Series(start=datetime(2018, 11, 20, 10, tzinfo=monthly.zone),
                            duration=HOUR, rrule="FREQ=MONTHLY;BYDAY=3TU")
    with pytest.raises(Conflict, match="2019-01-08"):
        rekey_changes(monthly, third_tuesdays, {cancel.original: cancel})
