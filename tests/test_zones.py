"""Zone lookup and the DST policy written in scheduler/core/zones.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.core.zones import get_zone, localize_strict, resolve_recurring
from scheduler.errors import AmbiguousLocalTime, InvalidZone, NonexistentLocalTime


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        pytest.param("America/New_Yrok", "America/New_York", id="transposed-letters"),
        pytest.param("Europe/Brusels", "Europe/Brussels", id="missing-letter"),
        pytest.param("america/new_york", "America/New_York", id="lower-case"),
        pytest.param("Addis Ababa", "Africa/Addis_Ababa", id="city-with-space"),
        pytest.param("jakarta", "Asia/Jakarta", id="city-only"),
    ],
)
def test_misspelled_zone_suggests_the_closest_name_first(typed: str, expected: str) -> None:
    with pytest.raises(InvalidZone) as raised:
        get_zone(typed)
    assert raised.value.suggestions[0] == expected
    assert f"did you mean {expected}" in str(raised.value)


def test_fixed_offset_abbreviation_is_refused_with_the_place_it_likely_means() -> None:
    """EST is a real tz database name, but it never observes summer time: the 2018 mistake."""
    with pytest.raises(InvalidZone, match=r"without summer time.*America/New_York"):
        get_zone("EST")


def test_zone_data_comes_from_the_tzdata_package() -> None:
    """Egypt's 2023 summer time must be known whatever the operating system ships."""
    cairo = get_zone("Africa/Cairo")
    assert datetime(2023, 7, 1, 12, tzinfo=cairo).utcoffset() == timedelta(hours=3)


def test_missing_time_is_refused_naming_the_jump() -> None:
    with pytest.raises(NonexistentLocalTime, match="clocks jump from 02:00 to 03:00"):
        localize_strict(datetime(2019, 3, 10, 2, 30), get_zone("America/New_York"), what="--start")


def test_missing_half_hour_in_lord_howe_is_refused_naming_the_jump() -> None:
    with pytest.raises(NonexistentLocalTime, match="from 02:00 to 02:30"):
        localize_strict(datetime(2019, 10, 6, 2, 10), get_zone("Australia/Lord_Howe"))


def test_missing_whole_day_in_samoa_names_both_dates() -> None:
    with pytest.raises(NonexistentLocalTime, match="from 2011-12-30 00:00 to 2011-12-31 00:00"):
        localize_strict(datetime(2011, 12, 30, 10), get_zone("Pacific/Apia"))


def test_repeated_time_is_refused_naming_both_instants() -> None:
    both = r"01:30 EDT \(05:30 UTC\).*01:30 EST \(06:30 UTC\)"
    with pytest.raises(AmbiguousLocalTime, match=both):
        localize_strict(datetime(2018, 11, 4, 1, 30), get_zone("America/New_York"))


def test_ordinary_time_is_localized_in_its_zone() -> None:
    moment = localize_strict(datetime(2018, 11, 13, 10), get_zone("America/New_York"))
    assert moment.astimezone(UTC) == datetime(2018, 11, 13, 15, tzinfo=UTC)


def test_recurring_instance_in_a_gap_uses_the_offset_from_before_the_gap() -> None:
    """RFC 5545 3.3.5: TZID=America/New_York:20070311T023000 is 03:30 EDT."""
    moment = resolve_recurring(datetime(2007, 3, 11, 2, 30), get_zone("America/New_York"))
    assert moment.astimezone(UTC) == datetime(2007, 3, 11, 7, 30, tzinfo=UTC)


def test_recurring_instance_in_a_repeat_is_its_first_instant() -> None:
    """RFC 5545 3.3.5: TZID=America/New_York:20071104T013000 is 01:30 EDT."""
    moment = resolve_recurring(datetime(2007, 11, 4, 1, 30), get_zone("America/New_York"))
    assert moment.astimezone(UTC) == datetime(2007, 11, 4, 5, 30, tzinfo=UTC)
