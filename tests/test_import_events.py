"""`coalition import` takes every event of a real export that can be a call and skips the
others, each named with its reason: holidays, birthdays and notes beside the meetings, an
event the file holds twice, dates a call cannot hold. --dry-run shows both lists, --json gives
them, --strict keeps the old all-or-nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import DATA, Coalition

CALENDARS = DATA / "calendars"
MIXED_SKIPPED = [
    "skipped event 'Labour Day' (line 4): DTSTART is a whole day (an all-day event); a call "
    "needs a start time",
    "skipped event \"Ada's birthday\" (line 10): DTSTART is a whole day (an all-day event); a "
    "call needs a start time",
    "skipped event 'Call the printer' (line 23): DTSTART has no time zone (a floating time "
    "means a different instant to every reader)",
    "skipped to-do 'Book the room' (line 28): not an event: only events (VEVENT) become calls",
    "skipped journal entry 'Minutes of May' (line 32): not an event: only events (VEVENT) "
    "become calls",
]


def calls(coalition: Coalition) -> dict[str, dict[str, Any]]:
    ran = coalition("call", "list", "--json")
    assert ran.exit_code == 0, ran.stderr
    return {c["slug"]: c for c in json.loads(ran.stdout)}


def occurrences(coalition: Coalition, slug: str) -> list[tuple[str, str, str]]:
    ran = coalition("call", "occurrences", slug, "--json", "--from", "2027-01-01", "--to",
                    "2027-12-31")
    assert ran.exit_code == 0, ran.stderr
    return [(o["id"], o["start_utc"], o["status"]) for o in json.loads(ran.stdout)]


def imported(coalition: Coalition, case: str, *args: str) -> str:
    ran = coalition("import", str(CALENDARS / f"{case}.ics"), *args)
    assert ran.exit_code == 0 and not ran.stderr, ran.stderr
    return ran.stdout


def test_same_event_twice_in_a_file_is_imported_once(coalition: Coalition) -> None:
    """Some exporters repeat a VEVENT; that used to end in "internal error: IntegrityError:
    UNIQUE constraint failed: call.uid"."""
    out = imported(coalition, "repeated_event")
    assert ("note: event 'Press review' (lines 4, 11) is in the file 2 times, the same each "
            "time: imported once") in out
    assert list(calls(coalition)) == ["press-review"]


def test_same_uid_with_different_contents_takes_the_highest_sequence(
    coalition: Coalition,
) -> None:
    imported(coalition, "repeated_uid_newer_sequence")
    assert calls(coalition)["press-review"]["start_utc"] == "2027-06-04T12:00:00Z"


def test_same_uid_that_nothing_orders_is_skipped_with_its_reason(coalition: Coalition) -> None:
    out = imported(coalition, "repeated_uid_undecidable")
    assert ("skipped event 'Press review' (line 4): UID 'which-1@example.org' is in the file 2 "
            "times (lines 4, 10) with different contents, and no SEQUENCE or LAST-MODIFIED "
            "says which is the newer") in out
    assert list(calls(coalition)) == ["budget-call"]


def test_export_with_holidays_birthdays_and_notes_imports_its_meetings(
    coalition: Coalition,
) -> None:
    """One all-day or floating event used to refuse the whole file."""
    out = imported(coalition, "mixed_export")
    assert out.splitlines() == [
        "imported coalition-steering-call: 2027-06-07T15:00 Europe/Brussels, "
        "FREQ=MONTHLY;BYDAY=1MO (0 moved, 0 cancelled)",
        *MIXED_SKIPPED,
        "1 imported, 5 skipped",
    ]
    assert list(calls(coalition)) == ["coalition-steering-call"]


def test_dry_run_shows_what_would_be_imported_and_what_skipped(coalition: Coalition) -> None:
    out = imported(coalition, "mixed_export", "--dry-run")
    assert out.splitlines()[0].startswith("would import Coalition steering call: ")
    assert out.splitlines()[1:] == [*MIXED_SKIPPED, "1 to import, 5 skipped"]
    assert calls(coalition) == {}


def test_strict_refuses_a_file_with_an_event_that_cannot_be_a_call(
    coalition: Coalition,
) -> None:
    path = CALENDARS / "mixed_export.ics"
    ran = coalition("import", str(path), "--strict")
    assert ran.exit_code == 2
    assert ran.stderr == (f"error: {path}: nothing imported (strict): 5 of its events cannot "
                          f"be calls; the first: {MIXED_SKIPPED[0].removeprefix('skipped ')}\n")
    assert calls(coalition) == {}


def test_strict_imports_a_file_whose_events_all_can_be_calls(coalition: Coalition) -> None:
    imported(coalition, "repeated_uid_newer_sequence", "--strict")
    assert list(calls(coalition)) == ["press-review"]


def test_json_gives_the_calls_and_each_skipped_event_with_its_reason(
    coalition: Coalition,
) -> None:
    found = json.loads(imported(coalition, "mixed_export", "--json"))
    assert [c["slug"] for c in found["imported"]] == ["coalition-steering-call"]
    assert found["skipped"][0] == {"what": "event 'Labour Day'", "line": 4,
                                   "reason": "DTSTART is a whole day (an all-day event); a "
                                             "call needs a start time"}
    assert [s["line"] for s in found["skipped"]] == [4, 10, 23, 28, 32]
    assert (found["dry_run"], found["notes"]) == (False, [])


def test_json_of_a_file_with_nothing_to_import_lists_why(coalition: Coalition) -> None:
    ran = coalition("import", str(DATA / "ics" / "all_day.ics"), "--json")
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1
    assert json.loads(ran.stdout)["skipped"][0]["reason"].startswith("DTSTART is a whole day")


def test_rdate_becomes_a_move_where_it_stands_in_for_a_cancelled_occurrence(
    coalition: Coalition,
) -> None:
    """An RDATE the rule makes adds nothing; one whose nearest occurrence an EXDATE cancels
    is that occurrence moved; one that adds a date skips its event (a call holds none)."""
    out = imported(coalition, "rdate")
    assert ("note: RDATE 2027-01-15 12:00 CET stands in for the cancelled occurrence of "
            "2027-01-14 10:00 CET: stored as its move") in out
    assert ("skipped event 'One-off with an extra date' (line 21): RDATE 2027-01-22 10:00 CET "
            "adds an occurrence its start does not make") in out
    assert len(occurrences(coalition, "weekly-with-a-repeated-date")) == 4
    assert occurrences(coalition, "weekly-moved-by-exdate-and-rdate")[1] == (
        "2027-01-14T09:00:00Z", "2027-01-15T11:00:00Z", "moved")


def test_event_with_a_second_rrule_is_skipped(coalition: Coalition) -> None:
    out = imported(coalition, "two_rrules")
    assert "skipped event 'Twice a month' (line 4): it has 2 RRULEs; a call follows one" in out
    assert list(calls(coalition)) == ["once-a-month"]


def test_export_imported_again_adds_only_its_new_events(coalition: Coalition) -> None:
    """An organizer exports again after adding an event: what was imported before is skipped
    with its reason, the new event is imported."""
    imported(coalition, "repeated_uid_newer_sequence")
    out = imported(coalition, "exported_again")
    assert ("skipped event 'Press review' (line 4): was already imported as 'press-review' "
            "(UID 'moved-1@example.org'); delete that call first to import it again") in out
    assert sorted(calls(coalition)) == ["budget-call", "press-review"]


def test_calls_and_their_changes_are_stored_in_one_insert_on_postgresql(
    coalition: Coalition, postgres_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The calls go in as one multi-row insert, their moves and cancellations as another;
    PostgreSQL stores them as SQLite does."""
    monkeypatch.setenv("COALITION_DATABASE_URL", postgres_url)
    imported(coalition, "rdate")
    assert occurrences(coalition, "weekly-moved-by-exdate-and-rdate")[1] == (
        "2027-01-14T09:00:00Z", "2027-01-15T11:00:00Z", "moved")
    again = coalition("import", str(CALENDARS / "rdate.ics"))
    assert again.exit_code == 2 and "was already imported as" in again.stderr


def test_file_with_more_events_than_imported_at_once_is_one_line(
    coalition: Coalition, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scheduler import importer

    monkeypatch.setattr(importer, "MAX_EVENTS", 3)
    path = CALENDARS / "mixed_export.ics"
    ran = coalition("import", str(path))
    assert ran.exit_code == 2
    assert ran.stderr == f"error: {path}: 4 events is more than this imports (3)\n"


def test_import_racing_another_stores_nothing_and_says_so(coalition: Coalition) -> None:
    """Planned before another import stored one of its UIDs: the insert fails as a whole,
    and the user is told to run it again (it used to be an internal IntegrityError)."""
    from datetime import UTC, datetime

    from sqlmodel import Session

    from scheduler import config, importer
    from scheduler.store import db

    path = CALENDARS / "exported_again.ics"
    settings = config.load(coalition.config)
    now = datetime(2027, 1, 1, tzinfo=UTC)
    planned = importer.plan_import(importer.read_calendar(path.read_bytes(), source=str(path)),
                                   settings, now, known={}, source=str(path))
    imported(coalition, "repeated_uid_newer_sequence")  # the other import, meanwhile
    engine = db.make_engine(settings.database_url())
    with Session(engine) as session, pytest.raises(importer.ImportFailed) as refused:
        importer.store(session, planned, now=now, source=str(path))
    engine.dispose()
    assert str(refused.value).startswith(f"{path}: nothing was stored: the calls changed")
    assert list(calls(coalition)) == ["press-review"]
