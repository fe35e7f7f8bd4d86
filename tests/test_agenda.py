"""Each month's own agenda (issue 21): stored for one occurrence, kept through moves and
cancellations, carried by every message, the feed and the invitations; no time change."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import recurring_ical_events
import time_machine
from icalendar import Calendar
from sqlmodel import Session, select

from scheduler import config, organizer
from scheduler.core.zones import get_zone
from scheduler.delivery import sender
from scheduler.store import calls, db, subscribers
from scheduler.store.models import Delivery
from scheduler.web import members
from tests.conftest import DATA, Coalition, ConfigCase, Ran
from tests.readers import READERS, icaljs_descriptions, iso
from tests.test_cli_calls import ADD, SLUG
from tests.test_invites import calendar_part

DECEMBER = ("Another unique opportunity to reflect on 2018, and the year ahead:\n\n"
            "- global, regional and national agendas\n"
            "- the High Level Political Forum slated for July 2019")
AUGUST = "Recording and **long notes** from July; what comes next."
DESCRIPTION = "Our monthly call."
WINDOW = (datetime(2018, 11, 1, tzinfo=UTC), datetime(2019, 12, 31, tzinfo=UTC))


def ok(ran: Ran) -> Ran:
    assert ran.exit_code == 0, ran.stderr
    return ran


def occurrences(coalition: Coalition, *args: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(ok(coalition(
        "call", "occurrences", SLUG, "--json", "--from", "2018-11-01", "--count", "12",
        *args)).stdout)
    return found


def agendas(coalition: Coalition) -> dict[str, str | None]:
    """Each occurrence's agenda by its original date, as `call occurrences --json` says."""
    return {o["original_start"][:10]: o["agenda"] for o in occurrences(coalition)}


def feed(coalition: Coalition) -> Path:
    return coalition.folder / "calendars" / f"{SLUG}.ics"


@pytest.fixture
def call(coalition: Coalition) -> Coalition:
    ok(coalition(*ADD, "--description", DESCRIPTION))
    return coalition


@pytest.fixture
def december(call: Coalition, tmp_path: Path) -> Path:
    path = tmp_path / "agenda.md"
    path.write_text(DECEMBER + "\n")
    return path


# --- storing it


def test_agenda_from_a_file_belongs_to_that_occurrence_alone(call: Coalition,
                                                             december: Path) -> None:
    ran = ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    assert ran.stdout == f"{SLUG}: Tue 2018-12-11 10:00 EST has its own agenda\n"
    found = agendas(call)
    assert found["2018-12-11"] == DECEMBER
    assert [day for day, text in found.items() if text is not None] == ["2018-12-11"]


def test_agenda_leaves_the_occurrence_confirmed_at_its_time(call: Coalition,
                                                            december: Path) -> None:
    """An agenda is no move: the occurrence is not listed as moved, and keeps its time."""
    before = occurrences(call)
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    after = occurrences(call)
    assert [{**o, "agenda": None} for o in after] == before
    assert {o["status"] for o in after} == {"confirmed"}


def test_agenda_from_standard_input(call: Coalition) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2019-08-13", "--file", "-", input=AUGUST))
    assert agendas(call)["2019-08-13"] == AUGUST


def test_windows_line_endings_and_blank_lines_around_are_not_kept(call: Coalition) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2019-08-13", "--file", "-",
            input="\r\n" + AUGUST.replace(" from", "\r\nfrom") + "\r\n\r\n"))
    assert agendas(call)["2019-08-13"] == AUGUST.replace(" from", "\nfrom")


def test_call_show_lists_the_agendas_and_the_next_one(call: Coalition, december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    with time_machine.travel("2018-12-01T00:00:00Z", tick=False):
        shown = json.loads(ok(call("call", "show", SLUG, "--json")).stdout)
        text = ok(call("call", "show", SLUG)).stdout
    assert shown["agendas"] == [{"id": "2018-12-11T15:00:00Z", "agenda": DECEMBER}]
    assert shown["next"]["agenda"] == DECEMBER
    assert "agendas      2018-12-11" in text
    assert "next agenda  Another unique opportunity" in text


def test_moved_occurrence_keeps_its_agenda(call: Coalition, december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    ok(call("call", "move", SLUG, "--on", "2018-12-11", "--to", "2018-12-18 11:00"))
    (moved,) = [o for o in occurrences(call) if o["id"] == "2018-12-11T15:00:00Z"]
    assert (moved["status"], moved["start"], moved["agenda"]) == (
        "moved", "2018-12-18T11:00:00-05:00", DECEMBER)
    ok(call("call", "restore", SLUG, "--on", "2018-12-11"))
    assert agendas(call)["2018-12-11"] == DECEMBER


def test_agenda_of_a_moved_occurrence_is_found_by_its_new_date_too(call: Coalition) -> None:
    ok(call("call", "move", SLUG, "--on", "2018-12-11", "--to", "2018-12-18 11:00"))
    ok(call("call", "agenda", SLUG, "--on", "2018-12-18", "--file", "-", input=DECEMBER))
    assert agendas(call)["2018-12-11"] == DECEMBER


def test_cancelled_occurrence_keeps_its_agenda_for_a_restore(call: Coalition,
                                                             december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    ok(call("call", "cancel", SLUG, "--on", "2018-12-11"))
    ok(call("call", "restore", SLUG, "--on", "2018-12-11"))
    (restored,) = [o for o in occurrences(call) if o["id"] == "2018-12-11T15:00:00Z"]
    assert (restored["status"], restored["agenda"]) == ("confirmed", DECEMBER)


def test_restore_of_an_occurrence_with_only_an_agenda_has_nothing_to_undo(
        call: Coalition, december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    ran = call("call", "restore", SLUG, "--on", "2018-12-11")
    assert ran.exit_code == 2 and "nothing to restore" in ran.stderr
    assert agendas(call)["2018-12-11"] == DECEMBER


def test_clear_gives_the_call_s_description_back(call: Coalition, december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    ran = ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--clear"))
    assert "has no agenda of its own any more" in ran.stdout
    assert set(agendas(call).values()) == {None}
    again = ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--clear", "--json"))
    assert json.loads(again.stdout)["changed"] is False


def test_the_same_agenda_again_changes_nothing(call: Coalition, december: Path) -> None:
    first = json.loads(ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file",
                               str(december), "--json")).stdout)
    sequence = json.loads(ok(call("call", "show", SLUG, "--json")).stdout)["sequence"]
    again = json.loads(ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file",
                               str(december), "--json")).stdout)
    assert (first["changed"], again["changed"]) == (True, False)
    assert again["occurrence"]["agenda"] == DECEMBER
    assert json.loads(ok(call("call", "show", SLUG, "--json")).stdout)["sequence"] == sequence


def test_edited_schedule_carries_the_agenda_by_date(call: Coalition, december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    ok(call("call", "edit", SLUG, "--start", "2018-11-13 11:00"))
    (carried,) = [o for o in occurrences(call) if o["agenda"] is not None]
    assert (carried["start"], carried["status"]) == ("2018-12-11T11:00:00-05:00", "confirmed")


def test_edit_that_would_orphan_an_agenda_says_how_to_clear_it(call: Coalition,
                                                               december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    ran = call("call", "edit", SLUG, "--rrule", "FREQ=MONTHLY;BYDAY=3TU", "--start",
               "2018-11-20 10:00")
    assert ran.exit_code == 2
    assert "2018-12-11" in ran.stderr and "--clear" in ran.stderr
    assert agendas(call)["2018-12-11"] == DECEMBER


def test_deleted_call_takes_its_agendas_with_it(call: Coalition, december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    ok(call("call", "delete", SLUG, "--yes"))
    ok(call(*ADD))
    assert set(agendas(call).values()) == {None}


# --- bad input: one line, exit status 2, nothing stored


def _bad_files(folder: Path) -> dict[str, list[str]]:
    (folder / "empty.md").write_text("\n  \n")
    (folder / "latin1.md").write_bytes("Réunion".encode("latin-1"))
    (folder / "bell.md").write_text("Theme\x07: the year ahead")
    (folder / "good.md").write_text(DECEMBER)
    return {
        "no-such-occurrence": ["--on", "2018-12-12", "--file", str(folder / "good.md")],
        "empty-file": ["--on", "2018-12-11", "--file", str(folder / "empty.md")],
        "not-utf8": ["--on", "2018-12-11", "--file", str(folder / "latin1.md")],
        "control-character": ["--on", "2018-12-11", "--file", str(folder / "bell.md")],
        "file-and-clear": ["--on", "2018-12-11", "--file", str(folder / "good.md"), "--clear"],
        "neither": ["--on", "2018-12-11"],
        "missing-file": ["--on", "2018-12-11", "--file", str(folder / "nowhere.md")],
    }


BAD = {
    "no-such-occurrence": "no occurrence on 2018-12-12",
    "empty-file": "empty.md is empty",
    "not-utf8": "latin1.md: not UTF-8 text (byte 2 is 0xe9)",
    "control-character": "bell.md contains the control character U+0007",
    "file-and-clear": "give either --file",
    "neither": "give --file FILE",
    "missing-file": "nowhere.md: no such file",
}


@pytest.mark.parametrize("case", BAD)
def test_bad_agenda_is_one_line_and_stores_nothing(call: Coalition, tmp_path: Path,
                                                   case: str) -> None:
    before = json.loads(ok(call("call", "show", SLUG, "--json")).stdout)
    ran = call("call", "agenda", SLUG, *_bad_files(tmp_path)[case])
    assert ran.exit_code == 2
    assert len(ran.stderr.splitlines()) == 1 and ran.stderr.startswith("error: ")
    assert BAD[case] in ran.stderr
    assert json.loads(ok(call("call", "show", SLUG, "--json")).stdout) == before
    assert not feed(call).read_text().count("RECURRENCE-ID")


def test_unknown_call_is_one_line(call: Coalition) -> None:
    ran = call("call", "agenda", "nowhere", "--on", "2018-12-11", "--clear")
    assert ran.exit_code == 2 and "no call 'nowhere'" in ran.stderr


# --- the feed


def _events(path: Path) -> list[Any]:
    return list(Calendar.from_ical(path.read_bytes()).walk("VEVENT"))


def test_feed_gives_the_occurrence_its_own_description_at_the_same_time(
        call: Coalition, december: Path) -> None:
    master_before = _events(feed(call))[0]
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    master, override = _events(feed(call))
    assert str(master["description"]).startswith(DESCRIPTION)
    assert override["recurrence-id"].to_ical() == b"20181211T100000"
    assert override["recurrence-id"].params["TZID"] == "America/New_York"
    assert override["dtstart"].to_ical() == b"20181211T100000"
    assert override["dtend"].to_ical() == b"20181211T110000"
    assert str(override["description"]) == f"{DECEMBER}\n\nRegister: https://example.org/register"
    assert int(override.decoded("sequence")) > int(master_before.decoded("sequence"))
    assert int(master.decoded("sequence")) == int(override.decoded("sequence"))


def test_every_change_of_the_agenda_raises_the_sequence(call: Coalition,
                                                        december: Path) -> None:
    def sequence() -> int:
        return int(_events(feed(call))[0].decoded("sequence"))

    seen = [sequence()]
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    seen.append(sequence())
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", "-", input=AUGUST))
    seen.append(sequence())
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--clear"))
    seen.append(sequence())
    assert seen == sorted(set(seen)) and len(seen) == 4


def test_clearing_removes_the_override(call: Coalition, december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--clear"))
    (master,) = _events(feed(call))
    assert "recurrence-id" not in master


def test_clearing_a_moved_occurrence_s_agenda_keeps_its_move(call: Coalition,
                                                            december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    ok(call("call", "move", SLUG, "--on", "2018-12-11", "--to", "2018-12-18 11:00"))
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--clear"))
    _, override = _events(feed(call))
    assert override["dtstart"].to_ical() == b"20181218T110000"
    assert str(override["description"]).startswith(DESCRIPTION)


def test_cancelled_occurrence_s_agenda_stays_out_of_the_feed(call: Coalition,
                                                             december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    ok(call("call", "cancel", SLUG, "--on", "2018-12-11"))
    (master,) = _events(feed(call))  # no override for it
    assert master["exdate"].to_ical() == b"20181211T100000"
    assert "reflect on 2018" not in str(master["description"])
    ok(call("call", "restore", SLUG, "--on", "2018-12-11"))  # and it comes back with it
    override = next(e for e in _events(feed(call)) if "recurrence-id" in e)
    assert str(override["description"]).startswith(DECEMBER)


def test_one_off_call_carries_its_agenda_in_its_only_event(coalition: Coalition) -> None:
    ok(coalition("call", "add", "--title", "Workshop", "--start", "2019-06-05 10:00", "--tz",
                 "Europe/Brussels", "--description", "A workshop."))
    ok(coalition("call", "agenda", "workshop", "--on", "2019-06-05", "--file", "-",
                 input=AUGUST))
    (event,) = _events(coalition.folder / "calendars" / "workshop.ics")
    assert "recurrence-id" not in event and str(event["description"]) == AUGUST


def rie_descriptions(path: Path) -> list[dict[str, str]]:
    """recurring-ical-events: each occurrence's start and DESCRIPTION."""
    calendar = Calendar.from_ical(path.read_bytes())
    return sorted(({"start": iso(e.decoded("dtstart")), "description": str(e["description"])}
                   for e in recurring_ical_events.of(calendar).between(*WINDOW)),
                  key=lambda o: o["start"])


DESCRIBERS = {"ical.js": lambda path: icaljs_descriptions(path, *WINDOW),
              "recurring-ical-events": rie_descriptions}


@pytest.mark.parametrize("reader", DESCRIBERS)
def test_calendar_readers_show_each_month_its_own_agenda(call: Coalition, december: Path,
                                                        reader: str) -> None:
    """December and August have their own agendas, February is moved (and keeps the call's
    description), April is cancelled: Thunderbird's parser and recurring-ical-events show
    each occurrence where we say it is, with the text we say it has."""
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    ok(call("call", "agenda", SLUG, "--on", "2019-08-13", "--file", "-", input=AUGUST))
    ok(call("call", "move", SLUG, "--on", "2019-02-12", "--to", "2019-02-19 10:00"))
    ok(call("call", "cancel", SLUG, "--on", "2019-04-09"))
    ours = [o for o in occurrences(call, "--to", "2019-12-31", "--count", "20")
            if o["status"] != "cancelled"]
    register = "\n\nRegister: https://example.org/register"
    expected = [{"start": o["start_utc"], "description": (o["agenda"] or DESCRIPTION) + register}
                for o in ours]
    assert DESCRIBERS[reader](feed(call)) == expected
    assert sum(o["agenda"] is not None for o in ours) == 2
    # and the times are still exactly ours, as every reader of the feeds checks them
    times = READERS[reader](feed(call), *WINDOW)
    assert [o["start"] for o in times] == [o["start_utc"] for o in ours]


# --- invitations


@pytest.fixture
def invited(call: Coalition) -> Coalition:
    ok(call("invite", SLUG, "--to", "Ada Lovelace <ada@example.org>"))
    return call


def test_invitees_get_a_request_for_that_occurrence(invited: Coalition, december: Path) -> None:
    before = len(invited.inbox())
    ran = ok(invited("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    assert "calendar update sent to 1 invited" in ran.stdout
    (message,) = invited.inbox()[before:]
    method, calendar = calendar_part(message)
    (event,) = calendar.walk("VEVENT")
    assert method == "REQUEST"
    assert event["recurrence-id"].to_ical() == b"20181211T100000"
    assert event["dtstart"].to_ical() == b"20181211T100000"
    assert str(event["description"]).startswith(DECEMBER)
    assert str(message["Subject"]) == ("Agenda: Justice For All coalition call, Tuesday, "
                                       "December 11, 2018")
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "has an agenda of its own; its time is the same:" in text
    assert "back at its usual time" not in text
    assert "On the agenda" in text and DECEMBER.split("\n")[0] in text


def test_cleared_agenda_sends_the_call_s_description_again(invited: Coalition,
                                                           december: Path) -> None:
    ok(invited("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    ok(invited("call", "agenda", SLUG, "--on", "2018-12-11", "--clear"))
    message = invited.inbox()[-1]
    method, calendar = calendar_part(message)
    (event,) = calendar.walk("VEVENT")
    assert method == "REQUEST" and event["recurrence-id"].to_ical() == b"20181211T100000"
    assert str(event["description"]).startswith(DESCRIPTION)
    assert str(message["Subject"]).startswith("Updated: ")
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "no longer has an agenda of its own" in text and "About this call" in text


def test_agenda_of_a_cancelled_occurrence_sends_no_request(invited: Coalition,
                                                           december: Path) -> None:
    """A REQUEST would bring the cancelled occurrence back in their calendars."""
    ok(invited("call", "cancel", SLUG, "--on", "2018-12-11"))
    before = len(invited.inbox())
    ran = ok(invited("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    assert "calendar update" not in ran.stdout and len(invited.inbox()) == before


def test_someone_invited_later_gets_the_agendas_ahead(call: Coalition, december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    with time_machine.travel("2018-12-01T00:00:00Z", tick=False):
        ok(call("invite", SLUG, "--to", "bea@example.org"))
    series, december_event = (calendar_part(m)[1].walk("VEVENT")[0] for m in call.inbox())
    assert "rrule" in series and "recurrence-id" not in series
    assert december_event["recurrence-id"].to_ical() == b"20181211T100000"
    assert str(december_event["description"]).startswith(DECEMBER)


# --- messages


@pytest.fixture
def own_templates(call: Coalition) -> Coalition:
    """tests/data/templates/agenda: forum posts that show the agenda, else the description,
    whatever the built-in templates say around it."""
    shutil.copytree(DATA / "templates" / "agenda", call.folder / "mine")
    config_file = call.config
    config_file.write_text(config_file.read_text().replace('folder = ""', 'folder = "mine"'))
    return call


def test_render_uses_the_occurrence_s_agenda(own_templates: Coalition, december: Path) -> None:
    ok(own_templates("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))

    def rendered(day: str) -> str:
        return ok(own_templates("render", SLUG, "--on", day, "--template", "announcement",
                                "--now", "2018-12-04T15:00:00Z")).stdout

    assert rendered("2018-12-11") == f"Justice For All coalition call: {DECEMBER}\n"
    assert rendered("2019-01-08") == f"Justice For All coalition call: {DESCRIPTION}\n"


def test_members_page_rows_carry_the_agenda(call: Coalition, december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    settings = config.load(call.config)
    engine = db.open_database(settings.database_url())
    with Session(engine) as session:
        (listed,) = members.page(session, settings, now=datetime(2018, 12, 1, tzinfo=UTC),
                                 reader=get_zone("Africa/Cairo"), lang="en")
    engine.dispose()
    assert [o["agenda"] for o in listed["occurrences"][:2]] == [DECEMBER, None]


# --- the planner: an agenda is no change of time


ANNOUNCED = datetime(2018, 12, 4, 15, 1, tzinfo=UTC)  # the 11 December announcement is out


@pytest.fixture
def service(config_case: ConfigCase) -> Iterator[tuple[config.Settings, Session]]:
    """The example service with its own forum templates (`own_templates`), the call added on
    1 November 2018 and two members; no clock but the `now` each step is given."""
    path = config_case("example")
    shutil.copytree(DATA / "templates" / "agenda", path.parent / "mine")
    path.write_text(path.read_text().replace('folder = ""', 'folder = "mine"'))
    settings = config.load(path)
    engine = db.open_database(settings.database_url())
    added = datetime(2018, 11, 1, tzinfo=UTC)
    with Session(engine, expire_on_commit=False) as session:
        calls.add_call(session, settings, calls.CallInput(
            title="Justice For All coalition call", start="2018-11-13 10:00",
            timezone="America/New_York", rrule="FREQ=MONTHLY;BYDAY=2TU",
            description=DESCRIPTION), now=added)
        for name in ("ada", "bea"):
            subscribers.add(session, settings, subscribers.NewSubscriber(
                email=f"{name}@example.org"), now=added)
        yield settings, session
    engine.dispose()


def _rules(session: Session) -> list[str]:
    return sorted(d.rule for d in session.exec(select(Delivery).where(
        Delivery.occurrence_id == datetime(2018, 12, 11, 15, tzinfo=UTC))).all())


def _posts(settings: config.Settings) -> dict[str, str]:
    folder = settings.path.parent / settings.forum.folder / SLUG
    return {p.name: p.read_text() for p in sorted(folder.glob("*.md"))}


def test_agenda_after_the_announcement_sends_no_new_one(
        service: tuple[config.Settings, Session]) -> None:
    """The announcement went out with the call's description; the agenda written after it
    brings no second announcement, and the next reminder carries the new text."""
    settings, session = service
    sender.run_once(session, settings, now=ANNOUNCED, worker="test")
    announced = _rules(session)
    assert announced.count("announcement") == 3  # the forum and two members
    done = organizer.agenda(session, settings, SLUG, on="2018-12-11", text=DECEMBER,
                            now=ANNOUNCED + timedelta(hours=1))
    assert done.changed and done.owed.notice == 0
    sender.run_once(session, settings, now=ANNOUNCED + timedelta(hours=2), worker="test")
    assert _rules(session) == announced
    (announcement,) = _posts(settings).values()
    assert DESCRIPTION in announcement and DECEMBER not in announcement
    soon = datetime(2018, 12, 11, 14, 31, tzinfo=UTC)  # "starts soon" is due at 14:30
    sender.run_once(session, settings, now=soon, worker="test")
    (post,) = [text for name, text in _posts(settings).items() if "starts-soon" in name]
    assert post.startswith(f"Soon: {DECEMBER}\n")


def test_agenda_changed_less_than_48_hours_ahead_sends_no_change_notice(
        service: tuple[config.Settings, Session]) -> None:
    settings, session = service
    sender.run_once(session, settings, now=ANNOUNCED, worker="test")
    day_before = datetime(2018, 12, 10, 15, tzinfo=UTC)
    first = organizer.agenda(session, settings, SLUG, on="2018-12-11", text=DECEMBER,
                             now=day_before)
    second = organizer.agenda(session, settings, SLUG, on="2018-12-11", text=AUGUST,
                              now=day_before + timedelta(minutes=5))
    cleared = organizer.agenda(session, settings, SLUG, on="2018-12-11", text=None,
                               now=day_before + timedelta(minutes=10))
    assert [d.owed.notice for d in (first, second, cleared)] == [0, 0, 0]
    sender.run_once(session, settings, now=day_before + timedelta(minutes=15), worker="test")
    assert not [rule for rule in _rules(session) if rule.startswith("changed-")]


def test_a_late_move_still_sends_its_notice_beside_an_agenda(
        service: tuple[config.Settings, Session]) -> None:
    """The agenda changes nothing about what a real move owes."""
    settings, session = service
    sender.run_once(session, settings, now=ANNOUNCED, worker="test")
    day_before = datetime(2018, 12, 10, 15, tzinfo=UTC)
    organizer.agenda(session, settings, SLUG, on="2018-12-11", text=DECEMBER, now=day_before)
    moved = organizer.move(session, settings, SLUG, on="2018-12-11", to="2018-12-11 11:00",
                           now=day_before)
    assert moved.owed.notice == 3 and moved.occurrence.agenda == DECEMBER


# --- import


def imported(coalition: Coalition, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    result = json.loads(ok(coalition("import", str(DATA / "ics" / name), "--json")).stdout)
    (item,) = result["imported"]
    found = json.loads(ok(coalition("call", "occurrences", item["slug"], "--json", "--from",
                                    "2018-11-01", "--count", "6")).stdout)
    return item, found


def test_google_export_keeps_each_override_s_own_description_as_its_agenda(
        coalition: Coalition) -> None:
    item, found = imported(coalition, "google_agendas.ics")
    assert (item["moved"], item["cancelled"], item["agendas"]) == (1, 0, 2)
    by_day = {o["original_start"][:10]: (o["status"], o["agenda"]) for o in found}
    assert by_day["2018-12-11"] == ("confirmed", DECEMBER)
    assert by_day["2019-02-12"] == ("moved", "An exciting couple of months ahead.")
    assert by_day["2019-03-12"] == ("confirmed", None)  # the same DESCRIPTION: no agenda
    assert by_day["2018-11-13"] == ("confirmed", None)


def test_outlook_export_keeps_an_override_s_description_as_its_agenda(
        coalition: Coalition) -> None:
    item, found = imported(coalition, "outlook_agendas.ics")
    assert (item["moved"], item["agendas"]) == (0, 1)
    assert [o["agenda"] for o in found] == [
        None, "Guest: the Hamburg hub.\nRead the minutes of March 20 first.", None, None]


def test_imported_agenda_reaches_the_feed(coalition: Coalition) -> None:
    item, _ = imported(coalition, "google_agendas.ics")
    events = _events(coalition.folder / "calendars" / f"{item['slug']}.ics")
    december = next(e for e in events if e.get("recurrence-id") is not None
                    and e["recurrence-id"].to_ical() == b"20181211T100000")
    assert str(december["description"]) == DECEMBER


def test_add_to_calendar_of_one_occurrence_carries_its_agenda(call: Coalition,
                                                              december: Path) -> None:
    ok(call("call", "agenda", SLUG, "--on", "2018-12-11", "--file", str(december)))
    settings = config.load(call.config)
    engine = db.open_database(settings.database_url())
    with Session(engine) as session:
        data, _ = members.occurrence_ics(session, SLUG, "20181211T150000Z")
        other, _ = members.occurrence_ics(session, SLUG, "20190108T150000Z")
    engine.dispose()
    (event,) = Calendar.from_ical(data).walk("VEVENT")
    (plain,) = Calendar.from_ical(other).walk("VEVENT")
    assert str(event["description"]).startswith(DECEMBER)
    assert str(plain["description"]).startswith(DESCRIPTION)
