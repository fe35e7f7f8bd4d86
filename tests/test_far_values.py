"""Issue 13: times that parse but that the service cannot serve are refused where they enter.

The years this service handles are 1900 to 2199 (`scheduler.core.zones`): a call's start, a move's
new time and an RRULE's UNTIL outside them are refused with one line, exit 2, nothing stored;
inside them, both ends build their feeds (read back alike by calendar clients), plan and send
their reminders, and show their times.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scheduler.core.recurrence import Series, occurrences
from tests.conftest import DATA, Coalition
from tests.readers import READERS

RANGE = "is outside the years this service handles (1900 to 2199)"


def stored(coalition: Coalition) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(coalition("call", "list", "--json").stdout)
    return listed


def calendars(coalition: Coalition) -> Path:
    return coalition.config.parent / "calendars"


def test_issue_13_far_future_call_refused_at_add(coalition: Coalition) -> None:
    """The call of the issue: it used to be stored, then break every feed build and pass."""
    ran = coalition("call", "add", "--title", "Far future", "--start", "9999-12-31 23:59",
                    "--tz", "Europe/Brussels")
    assert ran.exit_code == 2
    assert ran.stderr == f"error: --start: 9999-12-31 23:59 {RANGE}\n"
    assert stored(coalition) == []
    assert not list(calendars(coalition).glob("*.ics"))


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["--start", "1899-12-31 23:59"], f"--start: 1899-12-31 23:59 {RANGE}",
                 id="start-before-1900"),
    pytest.param(["--start", "2200-01-01 00:00"], f"--start: 2200-01-01 00:00 {RANGE}",
                 id="start-in-2200"),
    pytest.param(["--start", "2019-01-08 10:00", "--rrule", "FREQ=WEEKLY;UNTIL=99991231"],
                 f"--rrule UNTIL: 9999-12-31 {RANGE}", id="until-date-9999"),
    pytest.param(["--start", "2019-01-08 10:00", "--rrule",
                  "FREQ=WEEKLY;UNTIL=22000101T000000Z"], f"--rrule UNTIL: 2200-01-01 00:00 {RANGE}",
                 id="until-utc-2200"),
])
def test_call_outside_the_years_is_refused_and_not_stored(
    coalition: Coalition, args: list[str], message: str
) -> None:
    ran = coalition("call", "add", "--title", "Out of range", "--tz", "Europe/Brussels", *args)
    assert (ran.exit_code, ran.stderr) == (2, f"error: {message}\n")
    assert stored(coalition) == []


def test_edit_to_a_start_outside_the_years_changes_nothing(coalition: Coalition) -> None:
    assert coalition("call", "add", "--title", "Weekly", "--start", "2019-01-08 10:00", "--tz",
                     "Europe/Brussels", "--rrule", "FREQ=WEEKLY").exit_code == 0
    before = stored(coalition)
    for option, value in (("--start", "9999-01-05 10:00"),
                          ("--rrule", "FREQ=WEEKLY;UNTIL=99991231T000000Z")):
        ran = coalition("call", "edit", "weekly", option, value)
        assert ran.exit_code == 2 and RANGE in ran.stderr and ran.stderr.count("\n") == 1
    assert stored(coalition) == before


def test_move_outside_the_years_is_refused_and_changes_nothing(coalition: Coalition) -> None:
    assert coalition("call", "add", "--title", "Weekly", "--start", "2019-01-08 10:00", "--tz",
                     "Europe/Brussels", "--rrule", "FREQ=WEEKLY").exit_code == 0
    ran = coalition("call", "move", "weekly", "--on", "2019-01-15", "--to", "9999-12-31 10:00")
    assert (ran.exit_code, ran.stderr) == (2, f"error: --to: 9999-12-31 10:00 {RANGE}\n")
    listed = json.loads(coalition("call", "occurrences", "weekly", "--from", "2019-01-15",
                                  "--count", "1", "--json").stdout)
    assert listed[0]["status"] == "confirmed" and listed[0]["start_utc"] == "2019-01-15T09:00:00Z"


@pytest.mark.parametrize("args", [
    pytest.param(["run-once", "--now", "9999-12-31T00:00:00Z"], id="run-once-now"),
    pytest.param(["deliveries", "--upcoming", "--now", "1899-01-01T00:00:00Z"],
                 id="upcoming-now"),
])
def test_moment_outside_the_years_is_one_line(coalition: Coalition, args: list[str]) -> None:
    ran = coalition(*args)
    assert ran.exit_code == 2 and ran.stderr.startswith("error: --now: ")
    assert RANGE in ran.stderr and ran.stderr.count("\n") == 1


@pytest.mark.parametrize(("case", "message"), [
    pytest.param("far_future", f"event 'Far future': DTSTART: 9999-12-31 23:59 {RANGE}",
                 id="dtstart-9999"),
    pytest.param("far_past", f"event 'Far past': DTSTART: 1899-12-31 10:00 {RANGE}",
                 id="dtstart-1899"),
    pytest.param("until_far_future",
                 f"event 'Weekly until the end of time': RRULE UNTIL: 9999-12-31 00:00 {RANGE}",
                 id="until-9999"),
    pytest.param("google_far_future",  # UTC in the file, New York's wall time once read
                 f"event 'Google far future': DTSTART: 9999-12-31 17:00 {RANGE}", id="google-utc"),
])
def test_import_refuses_an_event_outside_the_years(
    coalition: Coalition, case: str, message: str
) -> None:
    ran = coalition("import", str(DATA / "ics" / f"{case}.ics"))
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1, ran.stderr
    assert ran.stderr.startswith(f"error: {message}") and RANGE in ran.stderr
    assert stored(coalition) == []


def test_rule_without_end_stops_at_the_end_of_2199() -> None:
    """A weekly rule with neither COUNT nor UNTIL is expanded no further than the years the
    service handles: asking for ten occurrences from December 2199 gives the five left."""
    series = Series(start=datetime(2199, 1, 6, 10, tzinfo=ZoneInfo("Europe/Brussels")),
                    duration=timedelta(hours=1), rrule="FREQ=WEEKLY")
    found = occurrences(series, {}, start=datetime(2199, 12, 1, tzinfo=UTC), count=10)
    assert [o.local_start.day for o in found] == [1, 8, 15, 22, 29]


# --- both ends work


def test_calls_at_both_ends_build_their_feeds(organizer: Callable[[str], Coalition]) -> None:
    coalition = organizer("far_ends")
    ran = coalition("feed", "build")
    assert ran.exit_code == 0 and "left out" not in ran.stdout
    assert {p.name for p in calendars(coalition).glob("*.ics")} == {
        "all.ics", "old-call.ics", "late-call.ics"}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("slug", "window"), [
    pytest.param("old-call", ("1900-01-01", "1901-01-01"), id="1900-new-york"),
    pytest.param("late-call", ("2199-06-01", "2199-12-01"), id="2199-brussels-summer"),
])
def test_calendar_clients_read_both_ends_as_we_do(
    organizer: Callable[[str], Coalition], reader: str, slug: str, window: tuple[str, str]
) -> None:
    """In 2199 a Brussels call is at 10:00 summer time (08:00 UTC) until October: the feed's
    VTIMEZONE must still carry the summer-time rule so late (it once had none after 2100)."""
    coalition = organizer("far_ends")
    start, end = (datetime.fromisoformat(d).replace(tzinfo=UTC) for d in window)
    listed = json.loads(coalition("call", "occurrences", slug, "--json", "--from", window[0],
                                  "--to", (end - timedelta(days=1)).date().isoformat()).stdout)
    ours = [o["start_utc"] for o in listed if start <= datetime.fromisoformat(o["start_utc"]) < end]
    theirs = [o["start"] for o in READERS[reader](calendars(coalition) / f"{slug}.ics", start, end)]
    assert theirs == ours and len(ours) > 20
    if slug == "late-call":
        assert "2199-07-02T08:00:00Z" in theirs and "2199-11-05T09:00:00Z" in theirs


@pytest.mark.parametrize(("slug", "now", "occurrence"), [
    pytest.param("old-call", "1900-01-09T15:00:30Z", "1900-01-16T15:00:00Z", id="1900"),
    pytest.param("late-call", "2199-06-25T08:00:30Z", "2199-07-02T08:00:00Z", id="2199"),
])
def test_calls_at_both_ends_send_their_reminders(
    organizer: Callable[[str], Coalition], slug: str, now: str, occurrence: str
) -> None:
    """The announcement a week ahead goes to the forum and, rendered in French for Jakarta,
    to the member."""
    coalition = organizer("far_ends")
    ran = coalition("run-once", "--now", now)
    assert ran.exit_code == 0, ran.stderr
    sent = {(d["rule"], d["channel"], d["status"])
            for d in coalition.deliveries()
            if (d["call"], d["occurrence_id"]) == (slug, occurrence)}
    assert sent == {("announcement", "forum", "sent"), ("announcement", "email", "sent")}


@pytest.mark.parametrize(("slug", "on", "local"), [
    pytest.param("old-call", "1900-01-02", "1900-01-02T22:07:12+07:07:12", id="1900"),
    pytest.param("late-call", "2199-12-31", "2199-12-31T16:00:00+07:00", id="2199"),
])
def test_calls_at_both_ends_show_their_times(
    organizer: Callable[[str], Coalition], slug: str, on: str, local: str
) -> None:
    coalition = organizer("far_ends")
    ran = coalition("times", slug, "--on", on, "--json")
    assert ran.exit_code == 0, ran.stderr
    assert {row["zone"]: row["local"] for row in json.loads(ran.stdout)}["Asia/Jakarta"] == local
