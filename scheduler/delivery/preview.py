"""What an organizer previews: one occurrence's times in many zones, and its messages."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from scheduler.config import Settings
from scheduler.core import inputs
from scheduler.core.recurrence import Occurrence, Status, occurrence_at
from scheduler.core.timetable import ZoneRow, time_table
from scheduler.core.zones import get_zone
from scheduler.delivery.render import (
    CallFacts,
    Message,
    Templates,
    message_context,
    repeats,
    sample_contexts,
)
from scheduler.errors import InvalidValue
from scheduler.store import rsvp
from scheduler.store.calls import display_zones, get_call, locate, series_of
from scheduler.store.models import Call


def facts(call: Call, settings: Settings) -> CallFacts:
    return CallFacts(
        slug=call.slug, title=call.title, description=call.description,
        register_url=call.register_url, join_url=call.join_url,
        zones=tuple(display_zones(call, settings)), feed_url=settings.feed_url(call.slug),
        repeats=repeats(call.rrule),
    )


def find_occurrence(session: Session, call: Call, on: str) -> Occurrence:
    original, changes = locate(session, call, on)
    return occurrence_at(original, series_of(call), changes.get(original))


def language_for(call: Call, settings: Settings, lang: str | None) -> str:
    return inputs.language(lang, settings.calls.languages) if lang else call.language


def zone_times(session: Session, settings: Settings, slug: str, *, on: str,
               zones: str | None = None, lang: str | None = None) -> list[ZoneRow]:
    """The occurrence on `on` in the call's display zones, or in `zones` when given."""
    call = get_call(session, slug)
    occurrence = find_occurrence(session, call, on)
    names = inputs.zone_names(zones, field="--zones") if zones else display_zones(call, settings)
    return time_table(occurrence.start, names, anchor=occurrence.zone,
                      lang=language_for(call, settings, lang), labels=settings.labels)


def render_message(
    session: Session, settings: Settings, slug: str, *, on: str, template: str, channel: str,
    now: datetime, lang: str | None = None, reader_zone: str | None = None,
    recording_url: str | None = None, notes: str | None = None,
) -> Message:
    """One message as it would go out at `now`, for a reader in `reader_zone`, with the
    members who have said they will come so far."""
    call = get_call(session, slug)
    occurrence = find_occurrence(session, call, on)
    if template == "changed":  # the notice of a move or a cancellation
        if occurrence.status is Status.CONFIRMED:
            raise InvalidValue(f"{slug}: the occurrence on {occurrence.original_local:%Y-%m-%d} "
                               "was neither moved nor cancelled")
    elif occurrence.status is Status.CANCELLED:
        raise InvalidValue(f"{slug}: the occurrence of {on} is cancelled; restore it first")
    lang = language_for(call, settings, lang)
    reader = get_zone(reader_zone) if reader_zone else occurrence.zone
    if recording_url is not None:
        recording_url = inputs.web_url(recording_url, field="--recording")
    context = message_context(
        facts(call, settings), occurrence, lang=lang, reader=reader, now=now,
        labels=settings.labels, recording_url=recording_url, notes=notes,
        folders=settings.template_folders,
        coming=rsvp.coming(session, call.id, occurrence.id) if call.id is not None else 0,
    )
    return Templates(settings.template_folders).render(template, channel, lang, context)


def check_messages(settings: Settings) -> list[str]:
    """Every message template in every language, rendered with sample data, and every
    language's catalog (strings missing or fuzzy, placeholders dropped or misspelt): one line
    per problem. The members' pages are checked by the web layer
    (`scheduler.web.site.check_pages`); `scheduler.doctor.check_templates` runs both."""
    templates = Templates(settings.template_folders)
    return templates.check(settings.calls.languages,
                           lambda lang: sample_contexts(lang, settings.labels))
