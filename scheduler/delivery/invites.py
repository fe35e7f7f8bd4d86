"""Calendar invitations by email (RFC 6047), and their updates and cancellations.

Each message is `multipart/alternative` (plain text, HTML, and `text/calendar; method=REQUEST`
or `CANCEL` with one VEVENT and one ATTENDEE) inside `multipart/mixed` with the same .ics
attached, which is how Gmail and Outlook recognise an invitation. The people invited to a call
are remembered, and every later change of the call reaches them with a higher SEQUENCE:

* the series changed (edit, restore): REQUEST for the series;
* one occurrence moved, or its agenda set, changed or cleared: REQUEST with its RECURRENCE-ID
  (for a one-off call, the agenda's REQUEST is the call's own);
* one occurrence cancelled: CANCEL with its RECURRENCE-ID;
* the call deleted: CANCEL for the series.

Which `Update` a change owes is decided in one place, `scheduler.organizer`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from enum import StrEnum

from sqlmodel import Session, select

from scheduler.channels import mail
from scheduler.config import Settings
from scheduler.core import addresses, ics, inputs
from scheduler.core.recurrence import Occurrence, Status, occurrence_at, occurrences
from scheduler.core.zones import to_utc
from scheduler.delivery.feeds import call_event
from scheduler.delivery.preview import facts
from scheduler.delivery.render import Templates, message_context
from scheduler.errors import InvalidValue
from scheduler.store.calls import changes_of, get_call, skipped
from scheduler.store.models import Call, Invitee, Subscriber

log = logging.getLogger(__name__)


class Update(StrEnum):
    """What an invitation message tells its attendee about the call."""

    SERIES = "series"  # new invitation, or the series itself changed
    MOVED = "moved"
    AGENDA = "agenda"  # one occurrence's agenda set, changed or cleared
    CANCELLED = "cancelled"
    RESTORED = "restored"
    DELETED = "deleted"


@dataclass(frozen=True, kw_only=True)
class Report:
    sent: list[str]
    failed: list[str]  # "address: reason"


def _texts(settings: Settings, call: Call, occurrence: Occurrence, template: str,
           now: datetime, extra: dict[str, object], lang: str) -> tuple[str, str, str]:
    context = message_context(facts(call, settings), occurrence, lang=lang,
                              reader=occurrence.zone, now=now, labels=settings.labels,
                              folders=settings.template_folders)
    context["invite"] = extra
    message = Templates(settings.template_folders).render(template, "email", lang, context)
    assert message.subject is not None and message.html is not None
    return message.subject, message.text, message.html


def build(settings: Settings, session: Session, call: Call, *, attendee: str, method: str,
          update: Update, original: datetime | None, now: datetime,
          again: bool = True, lang: str | None = None) -> EmailMessage:
    """One invitation message for one attendee (`again`: the call changed since they were
    invited), in `lang` (the call's language if None)."""
    event = call_event(call, changes_of(session, call))
    calendar = ics.invitation(event, method=method, organizer=settings.email.sender,
                              attendee=attendee, occurrence=original)
    if original is not None:
        occurrence = occurrence_at(original, event.series, event.changes.get(original))
    else:
        upcoming = [o for o in occurrences(event.series, event.changes, start=now, count=3)
                    if o.status is not Status.CANCELLED]
        occurrence = upcoming[0] if upcoming else occurrence_at(event.series.start,
                                                                event.series, None)
    template = "cancellation" if method == "CANCEL" else "invitation"
    subject, text, html = _texts(settings, call, occurrence, template, now, {
        "again": again,
        "one_occurrence": original is not None, "change": update.value,
    }, lang or call.language)
    message = EmailMessage()
    message["From"] = settings.email.sender
    message["To"] = addresses.header_of(attendee)
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = mail.message_id(settings.email.sender, "invite", call.uid,
                                            call.sequence, attendee, method, original or "series")
    for name, value in mail.automatic(settings).items():
        message[name] = value
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    message.add_alternative(calendar.decode(), subtype="calendar",
                            params={"method": method})
    message.add_attachment(calendar, maintype="application", subtype="ics",
                           filename="invite.ics")
    return message


def _send(settings: Settings, messages: list[EmailMessage]) -> Report:
    results = mail.send(settings, messages)
    # An address sent the series and a moved occurrence got two messages: it counts once.
    return Report(sent=list(dict.fromkeys(r.recipient for r in results if r.ok)),
                  failed=[f"{r.recipient}: {r.error}" for r in results if not r.ok])


def language_of(session: Session, call: Call, address: str) -> str:
    """The language an invitation to `address` is written in: theirs if they subscribed to
    reminders, else the call's."""
    subscriber = session.exec(select(Subscriber).where(
        Subscriber.email == parseaddr(address)[1].lower())).first()
    return subscriber.language if subscriber is not None else call.language


def invite(session: Session, settings: Settings, slug: str, to: list[str], *,
           now: datetime, lang: str | None = None) -> Report:
    """Send the series, and each occurrence ahead that is moved or has an agenda of its own,
    to each address of `to` ('Ada <ada@exémple.fr>' or an address alone), in `lang` (default:
    `language_of` each); remember them. Someone invited again since nothing changed gets the
    same invitation again, not an update; one whose last message is older than the call's last
    change gets the update.

    Every address is checked (`scheduler.core.addresses.with_name`: a domain beyond ASCII goes in
    its IDNA form) before anything is read, stored or sent: one that cannot be used raises
    `InvalidAddress`, and nobody is invited."""
    attendees = list(dict.fromkeys(addresses.with_name(a) for a in to))
    if not attendees:
        raise InvalidValue("give at least one --to address")
    if lang is not None:
        lang = inputs.language(lang, settings.calls.languages)
    call = get_call(session, slug)
    # Moved occurrences ahead, and those with an agenda, go each in a REQUEST of its own, as
    # the feed gives each an override (a one-off's own REQUEST carries its agenda).
    changes = changes_of(session, call)
    moved = [o for o, c in changes.items() if not c.cancelled and (
        (c.start is not None and c.start >= to_utc(now))
        or (c.start is None and c.agenda is not None and o >= to_utc(now)))]
    if _one_off(call):
        moved = [o for o in moved if changes[o].start is not None]
    assert call.id is not None
    sent_sequence = dict(session.exec(select(Invitee.email, Invitee.sequence).where(
        Invitee.call_id == call.id)).all())
    shifted = {o for o in moved if changes[o].reschedules}
    messages = []
    for attendee in attendees:
        last = sent_sequence.get(parseaddr(attendee)[1].lower())
        again = last is not None and last < call.sequence
        language = lang or language_of(session, call, attendee)
        messages.append(build(settings, session, call, attendee=attendee, method="REQUEST",
                              update=Update.SERIES, original=None, now=now, again=again,
                              lang=language))
        messages += [build(settings, session, call, attendee=attendee, method="REQUEST",
                           update=Update.AGENDA if o not in shifted else Update.MOVED,
                           original=o, now=now, again=again,
                           lang=language)
                     for o in sorted(moved)]
    report = _send(settings, messages)
    _remember(session, call, [a for a in attendees if parseaddr(a)[1] in report.sent], now)
    return report


def _remember(session: Session, call: Call, attendees: list[str], now: datetime) -> None:
    assert call.id is not None
    for attendee in attendees:
        address = parseaddr(attendee)[1].lower()
        row = session.exec(select(Invitee).where(Invitee.call_id == call.id,
                                                 Invitee.email == address)).first()
        if row is None:
            row = Invitee(call_id=call.id, email=address, sequence=call.sequence,
                          invited_at=now, updated_at=now)
        row.sequence, row.updated_at = call.sequence, now
        session.add(row)
    session.commit()


def _one_off(call: Call) -> bool:
    """Whether `call` is a one-off (no rule: no occurrence to override)."""
    return call.rrule is None


def invitees(session: Session, call: Call) -> list[str]:
    return list(session.exec(select(Invitee.email).where(Invitee.call_id == call.id)
                             .order_by(Invitee.email)).all())


def prepare_update(session: Session, settings: Settings, call: Call, update: Update, *,
                   original: datetime | None = None, now: datetime) -> list[EmailMessage]:
    """The messages a change of `call` owes its invitees (build them before a delete). A call
    whose invitation cannot be built (a row an older version stored) owes none: that is
    logged, and the change goes on."""
    method = "CANCEL" if update in (Update.CANCELLED, Update.DELETED) else "REQUEST"
    # A restored occurrence: the series no longer excludes it, and it is back at its own time.
    targets = [None, original] if update is Update.RESTORED else [original]
    if update is Update.AGENDA and _one_off(call):
        targets = [None]  # a one-off has no occurrences to override: the call itself changed
    attendees = invitees(session, call)
    if not attendees:
        return []
    try:
        ics.master(call_event(call, changes_of(session, call)))
    except Exception as e:  # whatever the stored call raises must not stop its change
        skipped(log, call, "the invitation update", e)
        return []
    return [build(settings, session, call, attendee=attendee, method=method, update=update,
                  original=target, now=now, lang=language_of(session, call, attendee))
            for attendee in attendees for target in targets]


def send_update(session: Session, settings: Settings, call: Call | None,
                messages: list[EmailMessage], *, now: datetime) -> Report:
    report = _send(settings, messages)
    if call is not None and call.id is not None:
        _remember(session, call, report.sent, now)
    return report
