"""The .ics feeds: read by three independent readers, they give our occurrences exactly."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from icalendar import Calendar

from tests.conftest import Coalition
from tests.readers import READERS, Occurrences

WINDOW = (datetime(2018, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))


def calendars(coalition: Coalition) -> Path:
    return coalition.config.parent / "calendars"


def ours(coalition: Coalition, slugs: list[str] | None = None) -> Occurrences:
    """What `coalition call occurrences` says, in the readers' shape (cancelled left out).

    A one-off call is one VEVENT without RECURRENCE-ID, so a reader's id for it is its start.
    """
    found = []
    for call in json.loads(coalition("call", "list", "--json").stdout):
        if slugs is not None and call["slug"] not in slugs:
            continue
        listed = json.loads(coalition("call", "occurrences", call["slug"], "--json", "--from",
                                      "2018-01-01", "--to", "2024-12-31").stdout)
        found += [{"uid": call["uid"], "id": o["id"] if call["rrule"] else o["start_utc"],
                   "start": o["start_utc"],
                   "end": o["end_utc"], "status": "confirmed"}
                  for o in listed if o["status"] != "cancelled"]
    return sorted(found, key=lambda o: (o["start"], o["uid"]))


def confirmed(found: Occurrences) -> Occurrences:
    return sorted((o for o in found if o["status"] != "cancelled"),
                  key=lambda o: (o["start"], o["uid"]))


@pytest.mark.parametrize("reader", READERS)
def test_all_calls_feed_gives_exactly_our_occurrences(
    organizer: Callable[[str], Coalition], reader: str
) -> None:
    coalition = organizer("across_dst")
    expected = ours(coalition)
    assert len(expected) > 50
    assert confirmed(READERS[reader](calendars(coalition) / "all.ics", *WINDOW)) == expected


@pytest.mark.parametrize("reader", READERS)
def test_each_calls_own_feed_gives_its_occurrences(
    organizer: Callable[[str], Coalition], reader: str
) -> None:
    coalition = organizer("across_dst")
    for slug in ("justice-for-all-coalition-call", "cairo-check-in", "st-johns-one-off"):
        found = READERS[reader](calendars(coalition) / f"{slug}.ics", *WINDOW)
        assert confirmed(found) == ours(coalition, [slug]), slug


@pytest.mark.parametrize("reader", ["icalendar", "recurring-ical-events"])
def test_instance_in_a_spring_forward_gap_reads_as_rfc_5545_says(
    organizer: Callable[[str], Coalition], reader: str
) -> None:
    """02:30 on 10 March 2019 does not exist in New York: it is 03:30 EDT (07:30 UTC).
    ical.js is left out: it misreads times this close to a change (ical.js#847); and
    recurring-ical-events ends that instance at DTEND's wall time, 0 minutes long, where RFC
    5545 3.8.5.3 keeps the exact duration, as we and the plain reader do."""
    coalition = organizer("gap_instance")
    found = READERS[reader](calendars(coalition) / "early-bird.ics", *WINDOW)
    expected = ours(coalition)
    assert [o["start"] for o in found] == [o["start"] for o in expected] == [
        "2019-03-03T07:30:00Z", "2019-03-10T07:30:00Z", "2019-03-17T06:30:00Z"]
    if reader == "icalendar":
        assert found == expected


@pytest.mark.parametrize("reader", READERS)
def test_cancelled_one_off_is_marked_cancelled(
    organizer: Callable[[str], Coalition], reader: str
) -> None:
    coalition = organizer("across_dst")
    found = READERS[reader](calendars(coalition) / "cancelled-one-off.ics", *WINDOW)
    assert [o["status"] for o in found] == ["cancelled"]


def test_feed_has_what_calendar_clients_need(organizer: Callable[[str], Coalition]) -> None:
    text = (calendars(organizer("across_dst")) / "all.ics").read_text()
    calendar = Calendar.from_ical(text)
    assert calendar["method"] == "PUBLISH" and "ATTENDEE" not in text
    for needed in ("NAME:Coalition calls", "X-WR-CALNAME:Coalition calls",
                   "X-WR-TIMEZONE:America/New_York", "REFRESH-INTERVAL;VALUE=DURATION:PT6H",
                   "X-PUBLISHED-TTL:PT6H"):
        assert needed in text, needed
    zones = {str(z["tzid"]) for z in calendar.walk("VTIMEZONE")}
    used = set(re.findall(r";TZID=([^:;]+)", text))
    assert used and used == zones
    # no floating times: every date-time of an event is zoned (TZID) or UTC (Z)
    events = text[text.index("BEGIN:VEVENT"):]
    for line in events.splitlines():
        if re.match(r"(DTSTART|DTEND|EXDATE|RECURRENCE-ID)[;:]", line):
            assert ";TZID=" in line or line.endswith("Z"), line
    for event in calendar.walk("VEVENT"):
        for field in ("uid", "dtstamp", "sequence", "summary", "last-modified"):
            assert field in event, (field, event.get("summary"))


def test_exdate_repeats_the_tzid_and_wall_time_of_dtstart(
    organizer: Callable[[str], Coalition],
) -> None:
    text = (calendars(organizer("across_dst")) / "justice-for-all-coalition-call.ics").read_text()
    assert "DTSTART;TZID=America/New_York:20181113T100000" in text
    assert "EXDATE;TZID=America/New_York:20190108T100000" in text
    assert "RECURRENCE-ID;TZID=America/New_York:20190212T100000" in text
    assert "DESCRIPTION:Register: https://example.org/register" in text


def test_nothing_changed_means_byte_identical_files(organizer: Callable[[str], Coalition]) -> None:
    coalition = organizer("across_dst")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
              for p in calendars(coalition).glob("*.ics")}
    assert "0 written" in coalition("feed", "build").stdout
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
             for p in calendars(coalition).glob("*.ics")}
    assert after == before


def test_a_change_rebuilds_the_feed_with_a_higher_sequence(with_monthly: Coalition) -> None:
    path = calendars(with_monthly) / "justice-for-all-coalition-call.ics"
    assert "SEQUENCE:0" in path.read_text()
    assert with_monthly("call", "cancel", "justice-for-all-coalition-call", "--on",
                        "2019-01-08").exit_code == 0
    text = path.read_text()
    assert "SEQUENCE:1" in text and "EXDATE;TZID=America/New_York:20190108T100000" in text


def test_uid_survives_a_new_slug_and_a_new_host(with_monthly: Coalition) -> None:
    def uid(path: Path) -> str:
        return str(next(iter(Calendar.from_ical(path.read_bytes()).walk("VEVENT")))["uid"])

    folder = calendars(with_monthly)
    first = uid(folder / "justice-for-all-coalition-call.ics")
    config = with_monthly.config
    config.write_text(config.read_text().replace('base_url = "http://127.0.0.1:8080"',
                                                 'base_url = "https://calls.example.org"'))
    assert with_monthly("call", "edit", "justice-for-all-coalition-call", "--slug",
                        "jfa").exit_code == 0
    assert uid(folder / "jfa.ics") == first
    assert "https://calls.example.org/calendars/jfa.ics" in (folder / "jfa.ics").read_text()
    assert not (folder / "justice-for-all-coalition-call.ics").exists()


def test_deleted_call_leaves_the_feeds(with_monthly: Coalition) -> None:
    folder = calendars(with_monthly)
    assert with_monthly("call", "delete", "justice-for-all-coalition-call", "--yes").exit_code == 0
    assert not (folder / "justice-for-all-coalition-call.ics").exists()
    assert "BEGIN:VEVENT" not in (folder / "all.ics").read_text()


@pytest.fixture
def with_monthly(coalition: Coalition) -> Coalition:
    from tests.test_cli_calls import ADD

    assert coalition(*ADD).exit_code == 0
    return coalition
