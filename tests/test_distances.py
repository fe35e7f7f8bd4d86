"""Issue 17, item 7: how far off a call is, rounded as a person says it, in every language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.config import BUILTIN_TEMPLATES
from scheduler.core.recurrence import Occurrence, Status
from scheduler.delivery.render import CallFacts, Distance, Templates, distance, message_context

START = datetime(2018, 11, 13, 15, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")
CALL = CallFacts(
    slug="jfa", title="Justice For All coalition call", description="",
    register_url=None, join_url=None, zones=("America/New_York", "Europe/Brussels"),
    feed_url="https://calls.example.org/calendars/jfa.ics",
)
OCCURRENCE = Occurrence(id=START, start=START, end=START + timedelta(hours=1), zone=NEW_YORK,
                        status=Status.CONFIRMED)


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        pytest.param(timedelta(seconds=-1), Distance(unit="started"), id="one-second-late"),
        pytest.param(timedelta(minutes=-10), Distance(unit="started"), id="ten-minutes-late"),
        pytest.param(timedelta(0), Distance(unit="minute"), id="right-now"),
        pytest.param(timedelta(seconds=60), Distance(unit="minute"), id="60-seconds"),
        pytest.param(timedelta(seconds=89), Distance(unit="minute"), id="89-seconds"),
        pytest.param(timedelta(seconds=90), Distance(unit="minutes", count=2), id="90-seconds"),
        pytest.param(timedelta(minutes=7, seconds=29), Distance(unit="minutes", count=7),
                     id="7.5-minutes-down"),
        pytest.param(timedelta(minutes=19, seconds=20), Distance(unit="minutes", count=19),
                     id="19-minutes"),
        pytest.param(timedelta(minutes=19, seconds=40), Distance(unit="minutes", count=20),
                     id="19.7-minutes"),
        pytest.param(timedelta(minutes=22), Distance(unit="minutes", count=20), id="22-minutes"),
        pytest.param(timedelta(minutes=23), Distance(unit="minutes", count=25), id="23-minutes"),
        pytest.param(timedelta(minutes=29, seconds=30), Distance(unit="minutes", count=30),
                     id="29.5-minutes"),
        pytest.param(timedelta(minutes=29), Distance(unit="minutes", count=30), id="29-minutes"),
        pytest.param(timedelta(minutes=57), Distance(unit="minutes", count=55), id="57-minutes"),
        pytest.param(timedelta(minutes=58), Distance(unit="hour"), id="58-minutes"),
        pytest.param(timedelta(minutes=60), Distance(unit="hour"), id="60-minutes"),
        pytest.param(timedelta(minutes=74), Distance(unit="hour"), id="74-minutes"),
        pytest.param(timedelta(minutes=75), Distance(unit="hour-and-a-half"), id="75-minutes"),
        pytest.param(timedelta(minutes=90), Distance(unit="hour-and-a-half"), id="90-minutes"),
        pytest.param(timedelta(minutes=104), Distance(unit="hour-and-a-half"),
                     id="104-minutes"),
        pytest.param(timedelta(minutes=105), Distance(unit="hours", count=2), id="105-minutes"),
        pytest.param(timedelta(minutes=120), Distance(unit="hours", count=2), id="two-hours"),
        pytest.param(timedelta(minutes=160), Distance(unit="hours", count=3), id="160-minutes"),
    ],
)
def test_distance_is_rounded_as_a_person_says_it(before: timedelta, expected: Distance) -> None:
    """Under 90 s "a minute", the nearest minute under 20, the nearest 5 minutes under an
    hour, then the nearest half-hour, and whole hours beyond two."""
    assert distance(START, START - before) == expected


def relative(before: timedelta, lang: str, *, template: str = "starts-soon") -> tuple[str, str]:
    """The subject and text of `template` sent `before` the start, in `lang`."""
    context = message_context(CALL, OCCURRENCE, lang=lang, reader=NEW_YORK, now=START - before)
    message = Templates([BUILTIN_TEMPLATES]).render(template, "email", lang, context)
    assert message.subject is not None
    return message.subject, message.text


@pytest.mark.parametrize(
    ("before", "lang", "expected"),
    [
        pytest.param(timedelta(minutes=29, seconds=30), "en", "starts in 30 minutes", id="en-30"),
        pytest.param(timedelta(minutes=60), "en", "starts in an hour", id="en-hour"),
        pytest.param(timedelta(seconds=60), "en", "starts in a minute", id="en-minute"),
        pytest.param(timedelta(minutes=90), "en", "starts in an hour and a half",
                     id="en-hour-and-a-half"),
        pytest.param(timedelta(minutes=5), "en", "starts in 5 minutes", id="en-5"),
        pytest.param(timedelta(minutes=60), "fr", "début dans une heure", id="fr-hour"),
        pytest.param(timedelta(seconds=60), "fr", "début dans une minute", id="fr-minute"),
        pytest.param(timedelta(minutes=1, seconds=40), "fr", "début dans 2 minutes",
                     id="fr-2"),
        pytest.param(timedelta(minutes=60), "es", "empieza dentro de una hora", id="es-hour"),
        pytest.param(timedelta(minutes=29), "es", "empieza dentro de 30 minutos", id="es-30"),
        pytest.param(timedelta(minutes=60), "pt", "começa daqui a uma hora", id="pt-hour"),
        pytest.param(timedelta(minutes=1), "pt", "começa daqui a um minuto", id="pt-minute"),
        pytest.param(timedelta(minutes=2), "ar", "بعد دقيقتين", id="ar-two"),
        pytest.param(timedelta(minutes=5), "ar", "بعد \u20685\u2069 دقائق", id="ar-few"),
        pytest.param(timedelta(minutes=15), "ar", "بعد \u206815\u2069 دقيقة", id="ar-many"),
        pytest.param(timedelta(minutes=60), "ar", "بعد ساعة", id="ar-hour"),
    ],
)
def test_issue_17_reminder_says_the_distance_as_a_person_would(
    before: timedelta, lang: str, expected: str
) -> None:
    """"starts in 29 minutes" 29.5 minutes before, "in 60 minutes" and "in 60 seconds" read
    like a machine."""
    subject, _ = relative(before, lang)
    assert expected in subject


@pytest.mark.parametrize(
    ("lang", "subject", "sentence"),
    [
        pytest.param("en", "Justice For All coalition call has started",
                     "The November Justice For All coalition call is under way: it began at "
                     "10:00 AM", id="en"),
        pytest.param("fr", "Justice For All coalition call a commencé",
                     "L’appel de novembre, « Justice For All coalition call », a commencé à "
                     "10:00", id="fr"),
        pytest.param("es", "Justice For All coalition call ya ha empezado",
                     "«Justice For All coalition call» ya está en marcha", id="es"),
        pytest.param("pt", "Justice For All coalition call já começou",
                     "“Justice For All coalition call” já está em andamento", id="pt"),
    ],
)
def test_issue_17_reminder_after_the_start_says_it_has_started(
    lang: str, subject: str, sentence: str
) -> None:
    """"starts already under way" / "commence déjà commencé" is not a sentence, and neither
    is "has started, at 8:00 AM your time"."""
    said, text = relative(timedelta(minutes=-2), lang)
    assert said == subject
    assert sentence in text
    assert "starts already" not in text and "déjà commencé" not in text
    assert "has started, at" not in text
