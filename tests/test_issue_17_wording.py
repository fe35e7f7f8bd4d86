"""Issue 17, items 5 and 14, with issue 21's agenda: what every message says around the times.

A French title is not always masculine; a reader on another day than the call sees every row
dated; the messages speak as the organizers did ("the November coalition call", a closing
line, questions welcome in the thread); and each reminder shows the month's own agenda, else
what the call is about.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scheduler import config
from scheduler.config import BUILTIN_TEMPLATES
from scheduler.core.recurrence import Occurrence, Status
from scheduler.delivery.render import (
    EMAIL_ONLY,
    TEMPLATES,
    CallFacts,
    Message,
    Templates,
    channels_of,
    message_context,
    repeats,
)
from scheduler.web.site import Site, Visitor

START = datetime(2018, 11, 13, 15, tzinfo=UTC)  # 10:00 New York
NEW_YORK = ZoneInfo("America/New_York")
CALL = CallFacts(
    slug="jfa", title="Justice For All coalition call", description="Our *monthly* call.",
    register_url="https://example.org/register", join_url="https://example.org/join",
    zones=("America/New_York", "Europe/Brussels", "Africa/Cairo", "Africa/Addis_Ababa",
           "Asia/Jakarta"),
    feed_url="https://calls.example.org/calendars/jfa.ics",
)
CONFIRMED = Occurrence(id=START, start=START, end=START + timedelta(hours=1), zone=NEW_YORK,
                       status=Status.CONFIRMED)
AGENDA = "Experts on the **HLPF** slated for July.\n\n- regional updates\n- next steps"
REMINDERS = ("announcement", "tomorrow", "today", "starts-soon")
LANGUAGES = ("en", "fr", "es", "ar", "pt")


def render(name: str, channel: str, lang: str, *, occurrence: Occurrence = CONFIRMED,
           call: CallFacts = CALL, reader: ZoneInfo = NEW_YORK,
           now: datetime = START - timedelta(days=1),
           invite: dict[str, Any] | None = None) -> Message:
    context = message_context(call, occurrence, lang=lang, reader=reader, now=now)
    context["invite"] = invite or {"again": False, "one_occurrence": False, "change": "series"}
    return Templates([BUILTIN_TEMPLATES]).render(name, channel, lang, context)


def every_part(message: Message) -> str:
    return "\n".join(part for part in (message.subject, message.text, message.html) if part)


# --- item 5: a French title has no gender we can know


FEMININE = replace(CALL, title="Réunion régionale Afrique de l’Est")
MOVED = replace(CONFIRMED, start=START + timedelta(days=2), end=START + timedelta(days=2, hours=1),
                status=Status.MOVED)
CANCELLED = replace(CONFIRMED, status=Status.CANCELLED)
# What agrees with a masculine title, reads as if a pronoun stood for it, or is an adjective
# that a subject line makes agree with the title ("Reprogramada: Taller regional").
GENDERED = re.compile(
    r"\b(le|Le|au|du|prochain|Prochain) (\*\*|<strong>|<bdi>)?Réunion"
    r"|Il a désormais|^(Annulé|Déplacé|Mis à jour) :|^(Cancelada|Reprogramada|Actualizada|"
    r"Remarcada|Atualizada):", re.MULTILINE)


def french_cases() -> list[Any]:
    cases = []
    for name in TEMPLATES + EMAIL_ONLY:
        for channel in channels_of(name):
            for occurrence in (CONFIRMED, MOVED, CANCELLED):
                if occurrence.status is Status.CANCELLED and name not in ("changed",
                                                                           "cancellation"):
                    continue
                for one in (False, True):
                    cases.append(pytest.param(name, channel, occurrence, one,
                                              id=f"{name}-{channel}-{occurrence.status}-{one}"))
    return cases


@pytest.mark.parametrize("lang", ["fr", "es", "pt"])
@pytest.mark.parametrize(("name", "channel", "occurrence", "one"), french_cases())
def test_issue_17_a_feminine_title_gets_no_masculine_article_or_pronoun(
        name: str, channel: str, occurrence: Occurrence, one: bool, lang: str) -> None:
    """"le prochain Réunion régionale", "Le Réunion ... est déplacé. Il a désormais lieu":
    the words around a title agree with a noun of ours ("l’appel « ... »"), never with the
    title, whose gender we cannot know; subjects start with a noun, not an adjective."""
    invite = {"again": not one, "one_occurrence": one, "change": "occurrence"}
    message = render(name, channel, lang, occurrence=occurrence, call=FEMININE, invite=invite)
    text = every_part(message)
    assert "Réunion régionale Afrique de l’Est" in text
    assert not GENDERED.search(text), GENDERED.search(text)


def test_issue_17_a_french_move_says_the_call_moved_without_a_pronoun_for_the_title() -> None:
    email = render("changed", "email", "fr", occurrence=MOVED, call=FEMININE)
    assert email.subject == ("Changement d’horaire : Réunion régionale Afrique de l’Est du "
                             "mardi 13 novembre 2018")
    assert ("L’appel « Réunion régionale Afrique de l’Est » du mardi 13 novembre 2018 est "
            "déplacé au jeudi 15 novembre 2018, à 10:00 chez vous (New York) :") in email.text


# --- item 14: a reader on another day than the call


def zone_rows(text: str) -> list[str]:
    """The indented rows of a plain-text time table."""
    return [line for line in text.splitlines() if re.match(r"^ +\S+.*\d", line)
            and re.search(r"\d:\d\d", line)]


def test_issue_17_a_chatham_reader_sees_the_day_of_every_row() -> None:
    """For a Chatham reader the first row says Wednesday; rows without a date would read as
    Wednesday too, though it is still Tuesday in New York, Brussels, Cairo, Addis Ababa and
    Jakarta. Every row carries its day, in text, HTML and the forum's line."""
    email = render("tomorrow", "email", "en", reader=ZoneInfo("Pacific/Chatham"))
    rows = zone_rows(email.text)
    assert len(rows) == 6 and "4:45 AM" in rows[0] and "(Wed" in rows[0]
    for row in rows[1:]:
        assert "(Tue" in row and "13)" in row, row
    assert email.html is not None and email.html.count("<em>(Tue") == 5
    post = render("announcement", "forum", "en", reader=ZoneInfo("Pacific/Chatham")).text
    assert post.count("(Tue") == 5 and post.count("(Wed") == 1


def test_a_reader_on_the_calls_day_sees_a_day_only_where_it_differs() -> None:
    """Tokyo is on Wednesday when New York's reader is on Tuesday: only its row is dated."""
    call = replace(CALL, zones=(*CALL.zones, "Asia/Tokyo"))
    rows = zone_rows(render("tomorrow", "email", "en", call=call).text)
    assert [row for row in rows if "(" in row] == [rows[-1]] and "(Wed" in rows[-1]


# --- item 14: tone, as the organizers wrote


MONTH = {"en": "November", "fr": "de novembre", "es": "de noviembre", "pt": "de novembro",
         "ar": "شهر نوفمبر"}


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("channel", ["email", "forum"])
@pytest.mark.parametrize("name", REMINDERS)
def test_issue_17_reminders_speak_of_the_months_call_and_close_warmly(
        name: str, channel: str, lang: str) -> None:
    """"The November coalition call will take place...", "we hope to see you there!"."""
    message = render(name, channel, lang)
    closing = {"en": "We hope to see you there!", "fr": "Au plaisir de vous y retrouver !",
               "es": "¡Esperamos contar contigo!", "pt": "Até lá!", "ar": "نتطلع إلى لقائكم!"}
    assert MONTH[lang] in message.text
    assert message.text.rstrip().endswith(closing[lang]) or closing[lang] in message.text


WEEKLY = {"en": "The weekly Justice", "fr": "L’appel hebdomadaire, « Justice",
          "es": "La sesión semanal de «Justice", "pt": "A sessão semanal de “Justice",
          "ar": "جلسة \u2068أسبوعية\u2069 من"}
MONTHS_CALL = {"en": "November Justice", "fr": "de novembre, «", "es": "de noviembre de «",
               "pt": "de novembro de “", "ar": "شهر نوفمبر"}


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", ["tomorrow", "today"])
def test_a_weekly_call_is_the_weekly_call_not_the_months(name: str, lang: str) -> None:
    """A call that meets every week is not "the November call" four times a month."""
    weekly = replace(CALL, repeats=repeats("FREQ=WEEKLY;BYDAY=TU"))
    text = render(name, "email", lang, call=weekly).text
    assert WEEKLY[lang] in text
    assert MONTHS_CALL[lang] not in text
    assert MONTHS_CALL[lang] in render(name, "email", lang).text  # a monthly call's words
    daily = render(name, "forum", "en", call=replace(CALL, repeats=repeats("FREQ=DAILY"))).text
    assert "The daily **" in daily
    assert repeats("FREQ=MONTHLY;BYDAY=2TU") is None and repeats(None) is None
    assert repeats("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU") is None  # not "weekly": the month
    assert repeats("FREQ=WEEKLY;INTERVAL=1") == "weekly"


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", ["announcement", "tomorrow", "today"])
def test_issue_17_forum_posts_invite_questions_in_the_thread(name: str, lang: str) -> None:
    """"Feel free to share any questions or thoughts here", in the organizers' thread."""
    asked = {"en": "Feel free to share them here in the thread.", "fr": "dans ce fil",
             "es": "en este hilo", "pt": "aqui no tópico", "ar": "هنا في هذا الموضوع"}
    assert asked[lang] in render(name, "forum", lang).text


def test_issue_17_the_started_reminder_reads_as_a_sentence() -> None:
    """"The X has started, at 8:00 AM your time" reads oddly."""
    text = render("starts-soon", "email", "en", now=START + timedelta(minutes=2)).text
    assert ("The November Justice For All coalition call is under way: it began at 10:00 AM "
            "your time (New York).") in text
    assert "It's not too late to join." in text


# --- issue 21: the month's agenda, else what the call is about


HEADINGS = {"en": ("On the agenda", "About this call"), "fr": ("Au programme",
                                                               "À propos de cet appel"),
            "es": ("Orden del día", "Sobre esta sesión"), "pt": ("Na pauta", "Sobre esta sessão"),
            "ar": ("جدول الأعمال", "نبذة عن هذه الجلسة")}


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("channel", ["email", "forum"])
@pytest.mark.parametrize("name", REMINDERS)
def test_issue_21_every_reminder_shows_the_occurrences_agenda(
        name: str, channel: str, lang: str) -> None:
    """The agenda as written under a translated heading, instead of the call's description;
    Markdown in HTML, its source in text and on the forum."""
    agenda, about = HEADINGS[lang]
    message = render(name, channel, lang, occurrence=replace(CONFIRMED, agenda=AGENDA))
    assert agenda in message.text and about not in message.text
    assert "Experts on the **HLPF** slated for July." in message.text
    assert "- regional updates" in message.text and "monthly" not in message.text
    if channel == "email":
        assert message.html is not None
        assert re.search(rf"<h2[^>]*>{agenda}</h2>\s*<div dir=\"auto\"><p>Experts on the "
                         r"<strong>HLPF</strong>",
                         message.html)
        assert "<li>regional updates</li>" in message.html and "monthly" not in message.html


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("channel", ["email", "forum"])
@pytest.mark.parametrize("name", REMINDERS)
def test_issue_21_without_an_agenda_the_call_says_what_it_is_about(
        name: str, channel: str, lang: str) -> None:
    agenda, about = HEADINGS[lang]
    message = render(name, channel, lang)
    assert about in message.text and agenda not in message.text
    assert "Our *monthly* call." in message.text
    if channel == "email":
        assert message.html is not None and "<p>Our <em>monthly</em> call.</p>" in message.html


@pytest.mark.parametrize("channel", ["email", "forum"])
@pytest.mark.parametrize("name", REMINDERS)
def test_issue_21_with_neither_there_is_no_empty_heading(name: str, channel: str) -> None:
    message = render(name, channel, "en", call=replace(CALL, description=""))
    for part in (message.text, message.html or ""):
        assert "On the agenda" not in part and "About this call" not in part
        assert "\n\n\n" not in part


def test_issue_21_the_members_page_shows_an_occurrences_agenda(
        config_case: Callable[..., Path]) -> None:
    settings = config.load(config_case("example", database=False))
    site = Site(settings, None, clock=lambda: START, secret="test")
    when = {"date": "Tuesday, November 13, 2018", "time": "10:00 AM", "offset": "UTC-05:00",
            "city": "New York", "iso": "2018-11-13T15:00:00+00:00"}
    feed = {"https": "https://x/calendars/jfa.ics", "webcal": "webcal://x/calendars/jfa.ics",
            "google": "https://calendar.google.com/calendar/render?cid=x"}
    rows = [{"status": "confirmed", "ics": f"/calls/jfa/{n}.ics", "reader": when, "end": when,
             "anchor": None, "moved_from": None, "agenda": agenda}
            for n, agenda in ((1, AGENDA), (2, None), (3, "Cancelled call's agenda."))]
    rows[2]["status"] = "cancelled"  # its agenda is kept for a restore, not shown
    call = {"slug": "jfa", "title": CALL.title, "description": "Our *monthly* call.",
            "register_url": None, "feed": feed, "occurrences": rows, "next": START}
    visitor = Visitor(lang="fr", zone=NEW_YORK, zone_chosen=True, form_id="test")
    page = bytes(site.page(visitor, "index.html", calls=[call], all_feed=feed).body).decode()
    assert page.count("Au programme") == 1
    assert "Experts on the <strong>HLPF</strong> slated for July." in page
    assert "Cancelled call" not in page
    assert "<p>Our <em>monthly</em> call.</p>" in page
