"""The time table: one instant in many zones and languages."""

from __future__ import annotations

import importlib.resources
import os
import subprocess
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import pytz

from scheduler.core.timetable import format_offset, time_table, timing
from scheduler.core.zones import all_zone_names

COALITION = ["America/New_York", "Europe/Brussels", "Africa/Cairo", "Africa/Addis_Ababa",
             "Asia/Jakarta"]
NOVEMBER_2018 = datetime(2018, 11, 13, 15, tzinfo=UTC)  # 10:00 New York, just after DST ended


def table(start: datetime, zones: list[str], lang: str = "en") -> list[tuple[str, str]]:
    rows = time_table(start, zones, anchor=ZoneInfo("America/New_York"), lang=lang)
    return [(row.time, row.label) for row in rows]


def test_issue_3_november_2018_call_gives_cairo_addis_and_jakarta_the_right_hour() -> None:
    """The hand-typed announcement said 4 PM Cairo, 5 PM Addis Ababa, 9 PM Jakarta."""
    assert table(NOVEMBER_2018, COALITION) == [
        ("10:00 AM", "New York"), ("4:00 PM", "Brussels"), ("5:00 PM", "Cairo"),
        ("6:00 PM", "Addis Ababa"), ("10:00 PM", "Jakarta"),
    ]


def test_french_table_uses_24_hour_times_and_french_city_names() -> None:
    assert table(NOVEMBER_2018, COALITION, "fr") == [
        ("10:00", "New York"), ("16:00", "Bruxelles"), ("17:00", "Le Caire"),
        ("18:00", "Addis-Abeba"), ("22:00", "Jakarta"),
    ]
    row = time_table(NOVEMBER_2018, ["Europe/Brussels"], anchor=ZoneInfo("America/New_York"),
                     lang="fr")[0]
    assert row.date == "mardi 13 novembre 2018"


def test_weekday_and_date_are_shown_only_where_the_date_differs_from_the_anchor() -> None:
    rows = time_table(NOVEMBER_2018, ["Asia/Jakarta", "Pacific/Kiritimati", "Pacific/Chatham"],
                      anchor=ZoneInfo("America/New_York"), lang="en")
    # CLDR's wording changes between Babel releases ("Chatham" or "Chatham Islands", "Nov" or
    # "November") and is not the point here: the reader needs the right time, and the weekday and
    # day of the month exactly where the date is not the anchor's.
    assert [(r.label.split()[0], r.time) for r in rows] == [
        ("Jakarta", "10:00 PM"), ("Kiritimati", "5:00 AM"), ("Chatham", "4:45 AM"),
    ]
    assert rows[0].other_day is None
    for row in rows[1:]:
        assert row.other_day is not None
        assert row.other_day.startswith("Wed, Nov") and row.other_day.endswith(" 14")


def test_configured_label_replaces_the_city_name() -> None:
    rows = time_table(NOVEMBER_2018, ["America/New_York"], anchor=ZoneInfo("America/New_York"),
                      lang="en", labels={"America/New_York": "NYC"})
    assert rows[0].label == "NYC"


def test_zone_without_a_cldr_city_gets_its_own_city_name() -> None:
    rows = time_table(NOVEMBER_2018, ["America/Argentina/Buenos_Aires"],
                      anchor=ZoneInfo("America/New_York"), lang="en")
    assert rows[0].label == "Buenos Aires"


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        pytest.param("America/St_Johns", "UTC\u221203:30", id="st-johns-negative-half-hour"),
        pytest.param("Asia/Kathmandu", "UTC+05:45", id="kathmandu"),
        pytest.param("Pacific/Kiritimati", "UTC+14:00", id="kiritimati"),
        pytest.param("UTC", "UTC+00:00", id="utc"),
    ],
)
def test_offsets_are_exact(zone: str, expected: str) -> None:
    """Babel's own GMT format says -04:30 for St John's; ours must not."""
    assert format_offset(NOVEMBER_2018.astimezone(ZoneInfo(zone)).utcoffset()) == expected


@pytest.mark.parametrize(
    ("now", "reader", "minutes", "days", "words"),
    [
        pytest.param(datetime(2018, 11, 13, 14, 40, tzinfo=UTC), "America/New_York", 20, 0,
                     "in 20 minutes", id="twenty-minutes-not-thirty"),
        pytest.param(datetime(2018, 11, 12, 15, tzinfo=UTC), "America/New_York", 1440, 1,
                     "in 24 hours", id="a-day-before"),
        pytest.param(datetime(2018, 11, 12, 20, tzinfo=UTC), "Asia/Jakarta", 1140, 0,
                     "in 19 hours", id="same-day-in-jakarta"),
        pytest.param(datetime(2018, 11, 13, 15, 10, tzinfo=UTC), "America/New_York", -10, 0,
                     "10 minutes ago", id="already-started"),
    ],
)
def test_timing_is_measured_from_now_in_the_readers_zone(
    now: datetime, reader: str, minutes: int, days: int, words: str
) -> None:
    result = timing(NOVEMBER_2018, now, ZoneInfo(reader), "en")
    assert (result.minutes_until, result.days_until, result.starts_in) == (minutes, days, words)


# --- every zone of the tz database, against two independent implementations

FIXED = [datetime(2018, 11, 13, 15, tzinfo=UTC), datetime(2019, 3, 12, 14, tzinfo=UTC),
         datetime(2023, 4, 27, 21, 59, tzinfo=UTC), datetime(2023, 4, 27, 22, 1, tzinfo=UTC),
         datetime(2024, 1, 15, 12, tzinfo=UTC), datetime(2024, 7, 15, 12, tzinfo=UTC)]


def instants(zone: str) -> list[datetime]:
    """Fixed moments, plus one minute either side of each of the zone's changes in 2018-2025."""
    moments = list(FIXED)
    for naive in getattr(pytz.timezone(zone), "_utc_transition_times", []):
        if datetime(2018, 1, 1) <= naive < datetime(2026, 1, 1):
            change = naive.replace(tzinfo=UTC)
            moments += [change - timedelta(minutes=1), change + timedelta(minutes=1)]
    return moments


def test_every_zone_has_both_sides_of_its_changes_checked() -> None:
    assert len(instants("Africa/Cairo")) > len(FIXED) + 4  # 2023: summer time came back


def test_every_zone_agrees_with_pytz() -> None:
    """pytz: a separate implementation with its own copy of the tz database."""
    wrong = []
    for zone in sorted(all_zone_names()):
        for moment in instants(zone):
            ours = time_table(moment, [zone], anchor=ZoneInfo("UTC"), lang="fr")[0]
            theirs = moment.astimezone(pytz.timezone(zone))
            if (ours.local.replace(tzinfo=None), ours.local.utcoffset()) != (
                    theirs.replace(tzinfo=None), theirs.utcoffset()) or \
                    ours.time != theirs.strftime("%H:%M"):
                wrong.append(f"{zone} at {moment:%Y-%m-%dT%H:%MZ}: {ours.local} != {theirs}")
    assert wrong == []


def test_every_zone_agrees_with_the_c_library() -> None:
    """glibc's `date`, reading the same tzdata files through TZDIR: another implementation."""
    tzdir = str(importlib.resources.files("tzdata") / "zoneinfo")
    wrong = []
    for zone in sorted(all_zone_names()):
        moments = instants(zone)
        dates = "".join(f"@{int(m.timestamp())}\n" for m in moments)
        ran = subprocess.run(["date", "-f", "-", "+%Y-%m-%dT%H:%M%z"], input=dates,
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "TZDIR": tzdir, "TZ": zone})
        for moment, theirs in zip(moments, ran.stdout.split(), strict=True):
            ours = time_table(moment, [zone], anchor=ZoneInfo("UTC"), lang="fr")[0].local
            if ours.strftime("%Y-%m-%dT%H:%M%z") != theirs:
                wrong.append(f"{zone} at {moment:%Y-%m-%dT%H:%MZ}: {ours} != {theirs}")
    assert wrong == []
