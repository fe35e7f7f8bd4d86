"""`coalition import` reads what real calendar exports hold: a byte-order mark, any line
ending, folded lines, UTF-16, the zone names of Windows and old Thunderbird, several calendars
in one file; it refuses in one line, naming the file, what cannot be read as a whole, and skips
only the event that holds an unreadable line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import DATA, Coalition

CALENDARS = DATA / "calendars"


def calls(coalition: Coalition) -> dict[str, dict[str, Any]]:
    """The stored calls by slug, as `call list --json` gives them."""
    ran = coalition("call", "list", "--json")
    assert ran.exit_code == 0, ran.stderr
    return {c["slug"]: c for c in json.loads(ran.stdout)}


def imported(coalition: Coalition, case: str, *args: str) -> str:
    ran = coalition("import", str(CALENDARS / f"{case}.ics"), *args)
    assert ran.exit_code == 0 and not ran.stderr, ran.stderr
    return ran.stdout


@pytest.mark.parametrize(("case", "slug"), [
    pytest.param("byte_order_mark", "steering-group", id="utf8-byte-order-mark-and-crlf"),
    pytest.param("line_endings_cr", "old-mac-call", id="cr-line-endings"),
    pytest.param("utf16", "reunion", id="utf16-with-its-mark"),
])
def test_file_written_by_windows_or_mac_tools_imports(
    coalition: Coalition, case: str, slug: str,
) -> None:
    """Windows tools start a file with a byte-order mark, which used to be refused as
    "Content line could not be parsed ... '\\ufeffBEGIN:VCALENDAR'"."""
    imported(coalition, case)
    assert list(calls(coalition)) == [slug]


def test_folded_lines_are_joined_even_inside_a_character(coalition: Coalition) -> None:
    """A line may be folded with a space or a tab, and some writers fold between the two
    bytes of an "é": the bytes are joined before they are decoded."""
    imported(coalition, "folded_lines")
    call = calls(coalition)["reunion-de-coordination-des-sections-regionales"]
    assert call["title"] == "Réunion de coordination des sections régionales"
    assert call["description"] == "Ordre du jour: rapports des sections, puis questions."
    assert call["timezone"] == "Europe/Paris"


def test_file_cut_off_before_its_end_is_one_line_naming_the_file(coalition: Coalition) -> None:
    """It used to print two error lines, the second echoing the file, and never said the
    file was cut off; a cut file may have lost cancellations, so nothing is imported."""
    path = CALENDARS / "cut_off.ics"
    ran = coalition("import", str(path))
    assert ran.exit_code == 2
    assert ran.stderr == (f"error: {path}: the calendar ends before END:VCALENDAR (the file "
                          "looks cut off)\n")
    assert calls(coalition) == {}


def test_empty_calendar_is_one_line(coalition: Coalition) -> None:
    path = CALENDARS / "empty_calendar.ics"
    ran = coalition("import", str(path))
    assert (ran.exit_code, ran.stderr) == (2, f"error: {path}: the calendar holds no events\n")


def test_zone_names_of_windows_thunderbird_and_vtimezones_become_iana_zones(
    coalition: Coalition,
) -> None:
    """A TZID that is no IANA name is looked up as a Windows name, as the IANA name at the end
    of a path, in any case, and through the X-LIC-LOCATION of its VTIMEZONE; an IANA name
    needs no VTIMEZONE in the file."""
    imported(coalition, "zone_names")
    zones = {slug: (c["timezone"], c["start_utc"]) for slug, c in calls(coalition).items()}
    assert zones == {
        "new-york-desk": ("America/New_York", "2027-06-04T14:00:00Z"),
        "berlin-desk": ("Europe/Berlin", "2027-06-04T08:00:00Z"),
        "paris-desk": ("Europe/Paris", "2027-06-04T08:00:00Z"),
        "delhi-desk": ("Asia/Kolkata", "2027-06-04T04:30:00Z"),
    }


def test_bytes_that_are_not_utf8_skip_only_their_event(coalition: Coalition) -> None:
    out = imported(coalition, "not_utf8")
    assert ("skipped event 'Caf\ufffd des luttes' (line 4): line 6: SUMMARY holds bytes that "
            "are not UTF-8 (0xE9); save the file as UTF-8") in out
    assert list(calls(coalition)) == ["budget-call"]


def test_control_characters_are_removed_from_title_and_description(
    coalition: Coalition,
) -> None:
    """Escape sequences and BEL would reach terminals and mail headers; tabs and line breaks
    stay in a description."""
    out = imported(coalition, "control_characters")
    assert "note: 4 control characters removed from its SUMMARY and DESCRIPTION" in out
    (call,) = calls(coalition).values()
    assert call["title"] == "[31mUrgent [0m call"
    assert call["description"] == "Agenda\nfirst item\tand tab"


def test_summary_longer_than_a_title_is_cut(coalition: Coalition) -> None:
    out = imported(coalition, "long_summary")
    assert "note: its SUMMARY of 499 characters is cut to 300" in out
    (call,) = calls(coalition).values()
    assert len(call["title"]) == 300 and call["title"].endswith("Coalition…")


def test_each_calendar_of_a_file_keeps_its_own_x_wr_timezone(coalition: Coalition) -> None:
    imported(coalition, "two_calendars")
    zones = {slug: (c["timezone"], c["start"]) for slug, c in calls(coalition).items()}
    assert zones == {"new-york-call": ("America/New_York", "2027-06-04T10:00:00-04:00"),
                     "paris-call": ("Europe/Paris", "2027-06-04T10:00:00+02:00")}


def test_unknown_x_wr_timezone_skips_only_the_events_that_need_it(coalition: Coalition) -> None:
    """A UTC time is read in the calendar's zone (Google's convention): without that zone, a
    series would drift across DST changes, so such events are skipped; one with a TZID is
    not."""
    out = imported(coalition, "unknown_x_wr_timezone")
    assert ("skipped event 'Given in UTC' (line 5): X-WR-TIMEZONE: unknown time zone "
            "'Europe/Pariss' (did you mean Europe/Paris") in out
    assert list(calls(coalition)) == ["given-with-its-zone"]
