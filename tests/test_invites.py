"""Calendar invitations by email (RFC 6047), and the updates that follow a call's changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
import time_machine
from icalendar import Calendar
from sqlmodel import Session

from scheduler import config
from scheduler.config import Settings
from scheduler.core.addresses import InvalidAddress
from scheduler.delivery import invites
from scheduler.store import calls, db
from tests.conftest import Coalition, ConfigCase, SmtpSink, read_maildir, use_smtp
from tests.test_cli_calls import ADD, SLUG

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


def calendar_part(message: EmailMessage) -> tuple[str, Calendar]:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            return str(part.get_param("method")), Calendar.from_ical(part.get_content())
    raise AssertionError("no text/calendar part")


@pytest.fixture
def invited(coalition: Coalition) -> Coalition:
    assert coalition(*ADD).exit_code == 0
    ran = coalition("invite", SLUG, "--to", "Ada Lovelace <ada@example.org>", "--to",
                    "bea@example.org")
    assert ran.exit_code == 0, ran.stderr
    return coalition


def test_invitation_is_what_gmail_and_outlook_recognise(invited: Coalition) -> None:
    messages = invited.inbox()
    assert [m["To"] for m in messages] == ["Ada Lovelace <ada@example.org>", "bea@example.org"]
    message = messages[0]
    assert message.get_content_type() == "multipart/mixed"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts[0].iter_parts()] == [
        "text/plain", "text/html", "text/calendar"]
    assert parts[1].get_content_type() == "application/ics"
    method, calendar = calendar_part(message)
    assert method == "REQUEST" and calendar["method"] == "REQUEST"
    (event,) = calendar.walk("VEVENT")
    assert str(event["organizer"]) == "mailto:calls@example.org"
    assert str(event["attendee"]) == "mailto:ada@example.org"
    assert event["attendee"].params["RSVP"] == "TRUE"
    assert "RRULE" in event and [z["tzid"] for z in calendar.walk("VTIMEZONE")] == [
        "America/New_York"]
    assert message["Subject"] == "Invitation: Justice For All coalition call"


def test_cancelled_occurrence_sends_cancel_with_its_recurrence_id(invited: Coalition) -> None:
    first = calendar_part(invited.inbox()[0])[1].walk("VEVENT")[0]
    sequence = int(first.decoded("sequence"))
    ran = invited("call", "cancel", SLUG, "--on", "2019-01-08")
    assert ran.exit_code == 0 and "calendar update sent to 2 invited" in ran.stdout
    method, calendar = calendar_part(invited.inbox()[-1])
    (event,) = calendar.walk("VEVENT")
    assert method == "CANCEL" and event["status"] == "CANCELLED"
    assert event["recurrence-id"].to_ical() == b"20190108T100000"
    assert event["recurrence-id"].params["TZID"] == "America/New_York"
    assert int(event.decoded("sequence")) > sequence


def test_moved_occurrence_sends_a_request_for_that_occurrence(invited: Coalition) -> None:
    assert invited("call", "move", SLUG, "--on", "2019-02-12", "--to",
                   "2019-02-19 10:00").exit_code == 0
    last = invited.inbox()[-1]
    method, calendar = calendar_part(last)
    (event,) = calendar.walk("VEVENT")
    assert method == "REQUEST" and event["recurrence-id"].to_ical() == b"20190212T100000"
    assert event["dtstart"].to_ical() == b"20190219T100000"
    assert str(last["Subject"]).startswith("Moved: ")


def test_edited_series_sends_an_update_with_a_higher_sequence(invited: Coalition) -> None:
    assert invited("call", "edit", SLUG, "--title", "Justice For All monthly call").exit_code == 0
    method, calendar = calendar_part(invited.inbox()[-1])
    (event,) = calendar.walk("VEVENT")
    assert method == "REQUEST" and "recurrence-id" not in event
    assert str(event["summary"]) == "Justice For All monthly call"
    assert int(event.decoded("sequence")) == 1


def test_deleted_call_cancels_the_whole_series(invited: Coalition) -> None:
    assert invited("call", "delete", SLUG, "--yes").exit_code == 0
    method, calendar = calendar_part(invited.inbox()[-1])
    (event,) = calendar.walk("VEVENT")
    assert method == "CANCEL" and "recurrence-id" not in event and "RRULE" in event
    assert event["status"] == "CANCELLED"


def test_same_invitation_keeps_its_message_id(invited: Coalition) -> None:
    """A resend of the same invitation is recognisable by its Message-ID."""
    first = {m["To"]: m["Message-ID"] for m in invited.inbox()}
    assert invited("invite", SLUG, "--to", "bea@example.org").exit_code == 0
    again = [m for m in invited.inbox() if m["To"] == "bea@example.org"]
    assert [m["Message-ID"] for m in again] == [first["bea@example.org"]] * 2
    assert again[-1]["Subject"] == "Invitation: Justice For All coalition call"


def test_issue_17_inviting_again_unchanged_sends_the_same_invitation(invited: Coalition) -> None:
    """Nothing changed since bea was invited: she gets the invitation again, not an update
    saying the call "has changed"."""
    first = next(m for m in invited.inbox() if m["To"] == "bea@example.org")
    assert invited("invite", SLUG, "--to", "bea@example.org").exit_code == 0
    again = [m for m in invited.inbox() if m["To"] == "bea@example.org"][-1]
    assert again["Subject"] == first["Subject"]
    texts = [m.get_body(("plain",)) for m in (first, again)]
    assert all(isinstance(text, EmailMessage) for text in texts)
    before, after = (str(text.get_content()) for text in texts if text is not None)
    assert after == before and "has changed" not in after


def test_issue_17_invitation_is_in_the_subscribers_language(coalition: Coalition) -> None:
    """A French subscriber invited without --lang reads a French invitation."""
    assert coalition(*ADD).exit_code == 0
    assert coalition("subscriber", "add", "amelie@example.org", "--lang", "fr").exit_code == 0
    assert coalition("invite", SLUG, "--to", "amelie@example.org").exit_code == 0
    (message,) = coalition.inbox()
    assert message["Subject"] == "Invitation : Justice For All coalition call"


def test_issue_17_lang_option_chooses_the_invitations_language(coalition: Coalition) -> None:
    """--lang overrides both the subscriber's language and the call's."""
    assert coalition(*ADD).exit_code == 0
    assert coalition("subscriber", "add", "amelie@example.org", "--lang", "en").exit_code == 0
    ran = coalition("invite", SLUG, "--to", "amelie@example.org", "--to", "bea@example.org",
                    "--lang", "fr")
    assert ran.exit_code == 0, ran.stderr
    assert [m["Subject"] for m in coalition.inbox()] == [
        "Invitation : Justice For All coalition call"] * 2


def test_issue_17_lang_option_refuses_an_unknown_language(coalition: Coalition) -> None:
    assert coalition(*ADD).exit_code == 0
    ran = coalition("invite", SLUG, "--to", "bea@example.org", "--lang", "de")
    assert ran.exit_code == 2 and "language 'de' is not one of" in ran.stderr
    assert coalition.inbox() == []


def test_issue_17_invite_with_a_moved_occurrence_ahead_says_invited_once(
        coalition: Coalition) -> None:
    """The series and the moved occurrence are two messages to one person: one line."""
    with time_machine.travel("2019-01-01T12:00:00Z", tick=False):
        assert coalition(*ADD).exit_code == 0
        assert coalition("call", "move", SLUG, "--on", "2019-02-12", "--to",
                         "2019-02-19 10:00").exit_code == 0
        ran = coalition("invite", SLUG, "--to", "bea@example.org")
    assert ran.exit_code == 0, ran.stderr
    assert len(coalition.inbox()) == 2
    assert ran.stdout.splitlines() == ["invited bea@example.org"]


def test_bad_address_is_refused_and_nothing_is_sent(coalition: Coalition) -> None:
    assert coalition(*ADD).exit_code == 0
    ran = coalition("invite", SLUG, "--to", "ada at example dot org")
    assert ran.exit_code == 2 and "is not an email address" in ran.stderr


def test_invitations_go_through_smtp_when_configured(
    coalition: Coalition, smtp_sink: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp_sink
    use_smtp(coalition.config, port)
    sink.refuse["bea@example.org"] = "550 5.1.1 no such mailbox"
    assert coalition(*ADD).exit_code == 0
    ran = coalition("invite", SLUG, "--to", "ada@example.org", "--to", "bea@example.org")
    assert ran.exit_code == 1
    assert "invited ada@example.org" in ran.stdout
    assert "invitation not sent to bea@example.org: 550" in ran.stderr
    assert [m["To"] for m in sink.received] == ["ada@example.org"]
    assert calendar_part(sink.received[0])[0] == "REQUEST"


@pytest.fixture
def library(config_case: ConfigCase) -> Iterator[tuple[Settings, Session, str]]:
    """The library alone, no CLI: settings, a session, and the slug of one call."""
    settings = config.load(config_case("example"))
    engine = db.open_database(settings.database_url())
    try:
        with Session(engine, expire_on_commit=False) as session:
            call = calls.add_call(session, settings, calls.CallInput(
                title="Weekly call", start="2026-01-12 10:00", timezone="Europe/Brussels",
                rrule="FREQ=WEEKLY"), now=NOW)
            yield settings, session, call.slug
    finally:
        engine.dispose()


def test_invite_refuses_a_bad_address_before_inviting_anyone(
        library: tuple[Settings, Session, str]) -> None:
    """The library checks every address itself, whoever calls it: the good one given first
    is neither sent nor remembered."""
    settings, session, slug = library
    with pytest.raises(InvalidAddress) as refused:
        invites.invite(session, settings, slug, ["Ana <ana@exémple.fr>", "bea at example.org"],
                       now=NOW)
    assert refused.value.text == "bea at example.org"
    assert read_maildir(settings.maildir) == []
    assert invites.invitees(session, calls.get_call(session, slug)) == []


def test_invite_sends_an_idn_domain_in_its_idna_form(
        library: tuple[Settings, Session, str]) -> None:
    settings, session, slug = library
    report = invites.invite(session, settings, slug, ["Ana <ana@exémple.fr>"], now=NOW)
    assert report == invites.Report(sent=["ana@xn--exmple-cva.fr"], failed=[])
    assert [str(m["To"]) for m in read_maildir(settings.maildir)] == [
        "Ana <ana@xn--exmple-cva.fr>"]
    assert invites.invitees(session, calls.get_call(session, slug)) == ["ana@xn--exmple-cva.fr"]


def test_a_name_with_a_comma_and_an_accent_is_one_recipient(coalition: Coalition) -> None:
    """The email package, given "Name <address>" as a string, wrote "To: Smith,
    =?utf-8?q?Jos=C3=A9?= <...>": two recipients, or one the name chose."""
    assert coalition("call", "add", "--title", "Regional call", "--start", "2030-01-08 15:00",
                     "--tz", "UTC").exit_code == 0
    ran = coalition("invite", "regional-call", "--to", '"Smith, José" <jose@example.org>')
    assert ran.exit_code == 0, ran.stderr
    (message,) = coalition.inbox()
    assert message["To"].addresses[0].display_name == "Smith, José"
    assert [a.addr_spec for a in message["To"].addresses] == ["jose@example.org"]
