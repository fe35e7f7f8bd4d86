"""Times in an imported file follow RFC 5545 as calendar clients read them: a UTC time is
exact, a wall time in a spring-forward gap is read with the offset from before the gap (later
by the gap's length), one that happens twice is the first; the summary says what was read
otherwise than written. An organizer typing such a time is still refused."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import DATA, Coalition

CALENDARS = DATA / "calendars"


def calls(coalition: Coalition) -> dict[str, dict[str, Any]]:
    ran = coalition("call", "list", "--json")
    assert ran.exit_code == 0, ran.stderr
    return {c["slug"]: c for c in json.loads(ran.stdout)}


def occurrences(coalition: Coalition, slug: str) -> list[tuple[str, str, str]]:
    ran = coalition("call", "occurrences", slug, "--json", "--from", "2027-01-01", "--to",
                    "2027-12-31")
    assert ran.exit_code == 0, ran.stderr
    return [(o["id"], o["start_utc"], o["status"]) for o in json.loads(ran.stdout)]


def imported(coalition: Coalition, case: str) -> str:
    ran = coalition("import", str(CALENDARS / f"{case}.ics"))
    assert ran.exit_code == 0 and not ran.stderr, ran.stderr
    return ran.stdout


def test_one_off_given_in_utc_in_the_repeated_hour_keeps_its_instant(
    coalition: Coalition,
) -> None:
    """Google writes UTC; 05:30Z and 06:30Z on 7 November 2027 are both 01:30 in New York.
    Both used to be refused ("does not exist or happens twice"). The second cannot be a
    New York wall time (that means the first), so it is kept in UTC."""
    out = imported(coalition, "utc_in_repeated_hour")
    assert ("note: its start, 2027-11-07 06:30 UTC, is the second 01:30 in America/New_York, "
            "which a wall time there cannot tell from the first: kept in UTC") in out
    found = {slug: (c["timezone"], c["start_utc"]) for slug, c in calls(coalition).items()}
    assert found == {"night-shift-handover": ("America/New_York", "2027-11-07T05:30:00Z"),
                     "night-shift-report": ("UTC", "2027-11-07T06:30:00Z")}


def test_series_given_in_utc_in_the_repeated_hour_moves_its_first_occurrence(
    coalition: Coalition,
) -> None:
    """The series keeps New York's 01:30; its first occurrence is moved to the exact second
    01:30, and the feed says so in UTC (with a TZID, 01:30 would be the first)."""
    imported(coalition, "utc_series_in_repeated_hour")
    assert occurrences(coalition, "night-shift-weekly") == [
        ("2027-11-07T05:30:00Z", "2027-11-07T06:30:00Z", "moved"),
        ("2027-11-14T06:30:00Z", "2027-11-14T06:30:00Z", "confirmed"),
        ("2027-11-21T06:30:00Z", "2027-11-21T06:30:00Z", "confirmed"),
    ]
    feed = (coalition.folder / "calendars" / "night-shift-weekly.ics").read_bytes().decode()
    assert "RECURRENCE-ID;TZID=America/New_York:20271107T013000\r\n" in feed
    assert "DTSTART:20271107T063000Z\r\n" in feed


def test_wall_time_in_a_gap_is_read_with_the_offset_before_it(coalition: Coalition) -> None:
    """02:30 on 14 March 2027 does not exist in New York: clients read it as 03:30 EDT. A
    one-off is stored at 03:30; a series keeps 02:30 for its later weeks."""
    out = imported(coalition, "wall_time_in_gap")
    assert ("note: its start 2027-03-14 02:30 does not exist in America/New_York (clocks jump "
            "forward over it): it is read as 03:30 EDT, as RFC 5545 says") in out
    assert "; its later occurrences keep 02:30" in out
    found = calls(coalition)
    assert (found["early-call"]["start"], found["early-call"]["duration"]) == (
        "2027-03-14T03:30:00-04:00", 30)
    assert [o[1] for o in occurrences(coalition, "early-weekly")] == [
        "2027-03-14T07:30:00Z", "2027-03-21T06:30:00Z", "2027-03-28T06:30:00Z"]
    assert found["early-weekly"]["duration"] == 60  # 02:30 to 03:30 on the wall


def test_wall_time_that_happens_twice_is_the_first(coalition: Coalition) -> None:
    out = imported(coalition, "wall_time_repeated")
    assert ("note: its start 2027-11-07 01:30 happens twice in America/New_York: it is read as "
            "the first, 01:30 EDT, as RFC 5545 says") in out
    assert calls(coalition)["late-call"]["start_utc"] == "2027-11-07T05:30:00Z"


def test_imported_series_that_starts_in_a_gap_can_be_edited(coalition: Coalition) -> None:
    """Its stored start was not typed by the organizer, so an edit that does not give
    --start takes it as it is."""
    imported(coalition, "wall_time_in_gap")
    ran = coalition("call", "edit", "early-weekly", "--title", "Early weekly call")
    assert ran.exit_code == 0, ran.stderr


def test_organizer_typing_a_time_in_a_gap_is_still_refused(coalition: Coalition) -> None:
    ran = coalition("call", "add", "--title", "Early call", "--tz", "America/New_York",
                    "--start", "2027-03-14 02:30")
    assert ran.exit_code == 2 and "does not exist in America/New_York" in ran.stderr


def test_exdate_that_matches_no_occurrence_is_ignored(coalition: Coalition) -> None:
    """Outlook leaves EXDATEs behind when a series is edited (here a Tuesday, and a
    Wednesday at 16:00); RFC 5545 clients ignore them. They used to refuse the file."""
    out = imported(coalition, "stale_exdate")
    assert "note: 2 EXDATEs that match no occurrence ignored" in out
    statuses = [status for _, _, status in occurrences(coalition, "weekly-hub-call")]
    assert statuses == ["confirmed", "confirmed", "cancelled", "confirmed", "confirmed",
                        "confirmed"]
