"""VTIMEZONEs derived from the tz database: yearly RRULEs, correct onsets, every zone."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytz
from icalendar import Calendar, Timezone

from scheduler.core.vtimezone import transitions, vtimezone
from scheduler.core.zones import all_zone_names
from tests.readers import node_script

START, END = datetime(2018, 1, 1, tzinfo=UTC), datetime(2038, 1, 1, tzinfo=UTC)


def offset_seconds(moment: datetime) -> int:
    offset = moment.utcoffset()
    assert offset is not None, moment
    return int(offset.total_seconds())


def ical(key: str) -> str:
    return bytes(vtimezone(key, 2018).to_ical()).decode()


def test_new_york_is_two_yearly_rules_with_onsets_in_the_offset_before() -> None:
    """RFC 5545's own example: DTSTART:20070311T020000 with TZOFFSETFROM:-0500. icalendar's
    from_tzinfo writes 03:00 there (icalendar/icalendar#252) and lists RDATEs instead."""
    text = ical("America/New_York")
    assert "DTSTART:20180311T020000\r\nRRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3\r\n" in text
    assert "DTSTART:20181104T020000\r\nRRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11\r\n" in text
    assert "RDATE" not in text


def test_weekday_on_or_after_a_date_is_a_yearly_rule() -> None:
    """Chile: the first Sunday on or after 2 April ("Sun>=2" in the tz database)."""
    assert "RRULE:FREQ=YEARLY;BYDAY=SU;BYMONTHDAY=2,3,4,5,6,7,8;BYMONTH=4" in ical(
        "America/Santiago")


def test_zone_without_changes_has_one_observance() -> None:
    text = ical("Asia/Jakarta")
    assert text.count("BEGIN:STANDARD") == 1 and "DAYLIGHT" not in text


def test_weekday_rule_that_ended_carries_until() -> None:
    """Mexico stopped summer time in 2022 (first Sunday of April, last Sunday of October)."""
    text = ical("America/Mexico_City")
    assert "DTSTART:20180401T020000\r\nRRULE:FREQ=YEARLY;UNTIL=20220403T080000Z;BYDAY=1SU;" \
        "BYMONTH=4" in text


def test_rule_that_is_no_weekday_rule_is_listed_date_by_date() -> None:
    """Iran followed its own calendar (21 or 22 March) until 2022: RDATEs, the first included."""
    daylight = ical("Asia/Tehran").split("BEGIN:DAYLIGHT")[1].split("END:DAYLIGHT")[0]
    assert "RRULE" not in daylight
    assert daylight.count("RDATE:") == 5 and "RDATE:20180322T000000" in daylight


def test_scan_finds_every_transition_pytz_lists() -> None:
    """pytz keeps its own list of each zone's changes; the scan must find all of them."""
    missed = []
    for key in sorted(all_zone_names()):
        listed = {t.replace(tzinfo=UTC) for t in getattr(pytz.timezone(key),
                                                           "_utc_transition_times", [])
                  if START.replace(tzinfo=None) <= t < END.replace(tzinfo=None)}
        found = {t.at for t in transitions(ZoneInfo(key), START, END)}
        # pytz lists some changes of name or DST flag only; a change of offset must be found.
        offset_changes = {t for t in listed
                          if (t - timedelta(seconds=1)).astimezone(ZoneInfo(key)).utcoffset()
                          != t.astimezone(ZoneInfo(key)).utcoffset()}
        missed += [f"{key} {t}" for t in sorted(offset_changes - found)]
    assert missed == []


def test_every_zone_reads_back_with_the_right_offsets() -> None:
    """icalendar's own VTIMEZONE reader, one minute either side of every change to 2038."""
    wrong: list[str] = []
    for key in sorted(all_zone_names()):
        zone = ZoneInfo(key)
        parsed = Calendar.from_ical(vtimezone(key, 2018).to_ical())
        assert isinstance(parsed, Timezone)
        read = parsed.to_tz()
        moments = [START + timedelta(hours=12), datetime(2030, 7, 1, tzinfo=UTC)]
        for change in transitions(zone, START, END):
            moments += [change.at - timedelta(minutes=1), change.at + timedelta(minutes=1)]
        wrong += [f"{key} at {m:%Y-%m-%dT%H:%MZ}" for m in moments
                  if m.astimezone(read).utcoffset() != m.astimezone(zone).utcoffset()]
    assert wrong == []


ICALJS_ZONES = ["America/New_York", "America/Santiago", "Africa/Cairo", "Australia/Lord_Howe",
                "Pacific/Chatham", "Europe/London", "Australia/Sydney", "America/Havana",
                "Africa/Casablanca", "Asia/Gaza", "Asia/Tehran", "America/Asuncion",
                "America/St_Johns", "Asia/Kathmandu", "Pacific/Apia"]


@pytest.mark.parametrize("key", ICALJS_ZONES)
def test_thunderbirds_parser_reads_the_same_offsets(key: str, tmp_path: Path) -> None:
    """ical.js, a day either side of every change. (Closer to a change ical.js reads onsets as
    if they were UTC, off by up to 14 hours in Apia: kewisch/ical.js#847, open upstream.
    Thunderbird uses its own zone data for IANA names, so subscribers do not see this.)"""
    calendar = Calendar()
    calendar.add_component(vtimezone(key, 2018))
    path = tmp_path / "zone.ics"
    path.write_bytes(calendar.to_ical())
    moments = [START + timedelta(days=1)]
    for change in transitions(ZoneInfo(key), START, datetime(2031, 1, 1, tzinfo=UTC)):
        moments += [change.at - timedelta(days=1), change.at + timedelta(days=1)]
    ran = subprocess.run(["node", str(node_script("offsets.mjs")), str(path),
                          *(m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in moments)],
                         capture_output=True, text=True, check=True)
    theirs = json.loads(ran.stdout)[key]
    ours = [offset_seconds(m.astimezone(ZoneInfo(key))) for m in moments]
    assert theirs == ours
