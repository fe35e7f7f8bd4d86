"""Messages from templates: snapshots in both languages, the sandbox, escaping, overrides."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scheduler.config import BUILTIN_TEMPLATES
from scheduler.core.recurrence import Occurrence, Status
from scheduler.delivery.render import (
    CHANNELS,
    EMAIL_ONLY,
    TEMPLATES,
    CallFacts,
    Message,
    RenderError,
    Templates,
    channels_of,
    message_context,
    sample_context,
    sample_contexts,
)
from scheduler.errors import InvalidValue

DATA = Path(__file__).parent / "data"
SNAPSHOTS = DATA / "snapshots"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
NEW_YORK = ZoneInfo("America/New_York")
START = datetime(2018, 11, 13, 15, tzinfo=UTC)
CALL = CallFacts(
    slug="jfa", title="Justice For All coalition call", description="",
    register_url="https://example.org/register", join_url=None,
    zones=("America/New_York", "Europe/Brussels", "Africa/Cairo", "Africa/Addis_Ababa",
           "Asia/Jakarta"),
    feed_url="https://calls.example.org/calendars/jfa.ics",
)
OCCURRENCE = Occurrence(id=START, start=START, end=START + timedelta(hours=1), zone=NEW_YORK,
                        status=Status.CONFIRMED)


def builtin() -> Templates:
    return Templates([BUILTIN_TEMPLATES])


def with_case(case: str) -> Templates:
    """tests/data/templates/<case>/ in front of the built-in templates, as an organizer's folder."""
    return Templates([DATA / "templates" / case, BUILTIN_TEMPLATES])


def render(name: str, channel: str, lang: str = "en", *, now: datetime, reader: ZoneInfo = NEW_YORK,
           call: CallFacts = CALL, templates: Templates | None = None) -> Message:
    context = message_context(call, OCCURRENCE, lang=lang, reader=reader, now=now)
    return (templates or builtin()).render(name, channel, lang, context)


def snapshot_text(message: Message) -> str:
    if message.subject is None:
        return message.text
    return f"Subject: {message.subject}\n\n{message.text}\n--- HTML ---\n{message.html}"


@pytest.mark.parametrize("lang", ["en", "fr"])
@pytest.mark.parametrize(("name", "channel"), [(name, channel) for name in TEMPLATES + EMAIL_ONLY
                                               for channel in channels_of(name)])
def test_template_matches_its_snapshot(name: str, channel: str, lang: str) -> None:
    """The sample call 30 minutes before it starts. Refresh with UPDATE_SNAPSHOTS=1 after a
    deliberate change, and read the diff."""
    rendered = snapshot_text(builtin().render(name, channel, lang, sample_context(lang)))
    path = SNAPSHOTS / channel / f"{name}.{lang}.txt"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}; run with UPDATE_SNAPSHOTS=1 and review it"
    assert rendered == path.read_text(encoding="utf-8")


def test_issue_3_forum_announcement_lists_the_right_times_and_local_dates_markup() -> None:
    post = render("announcement", "forum", now=START - timedelta(days=7)).text
    assert ("10:00 AM New York // 4:00 PM Brussels // 5:00 PM Cairo // 6:00 PM Addis Ababa "
            "// 10:00 PM Jakarta") in post
    assert ('[date=2018-11-13 time=15:00:00 timezone="UTC" timezones="America/New_York|'
            'Europe/Brussels|Africa/Cairo|Africa/Addis_Ababa|Asia/Jakarta"]') in post


def test_reminder_sent_20_minutes_before_says_20_minutes() -> None:
    email = render("starts-soon", "email", now=START - timedelta(minutes=20))
    assert email.subject == "Justice For All coalition call starts in 20 minutes"
    assert "starts in 20 minutes" in email.text


def test_french_reminder_uses_french_words_and_times() -> None:
    email = render("starts-soon", "email", "fr", now=START - timedelta(minutes=30))
    assert email.subject == "Justice For All coalition call : début dans 30 minutes"
    assert "16:00  Bruxelles" in email.text and "mardi" not in email.subject


@pytest.mark.parametrize(
    ("now", "reader", "expected"),
    [
        pytest.param(START - timedelta(hours=20), NEW_YORK, "tomorrow", id="new-york-evening"),
        pytest.param(START - timedelta(hours=20), ZoneInfo("Asia/Jakarta"), "later today",
                     id="jakarta-same-morning"),
        pytest.param(START - timedelta(hours=3), NEW_YORK, "later today", id="three-hours"),
        pytest.param(START - timedelta(minutes=90), NEW_YORK, "in an hour and a half",
                     id="90-minutes"),
    ],
)
def test_relative_words_depend_on_the_readers_calendar_day(
    now: datetime, reader: ZoneInfo, expected: str
) -> None:
    email = render("tomorrow", "email", now=now, reader=reader)
    assert f"is {expected}," in email.text


def test_readers_zone_comes_first_in_the_table() -> None:
    email = render("tomorrow", "email", now=START - timedelta(days=1),
                   reader=ZoneInfo("Africa/Kinshasa"))
    table = [line.split()[-1] for line in email.text.splitlines() if line.startswith("  ")
             and ":" in line and "http" not in line]
    assert table[:2] == ["Kinshasa", "York"]
    assert "your time (Kinshasa)" in email.text


def test_every_text_links_registration_and_calendars() -> None:
    for channel in CHANNELS:
        message = render("today", channel, now=START - timedelta(hours=5))
        body = message.text + (message.html or "")
        assert "https://example.org/register" in body
        assert "https://calendar.google.com/calendar/render?action=TEMPLATE" in body
        assert "dates=20181113T150000Z%2F20181113T160000Z" in body
        assert "webcal://calls.example.org/calendars/" in body


def test_all_coalition_calls_links_the_feed_of_all_calls() -> None:
    """Issue 17: the words said "all coalition calls" and the link was one call's feed."""
    email, post = (render("today", channel, now=START - timedelta(hours=5))
                   for channel in ("email", "forum"))
    line = next(t for t in email.text.splitlines() if "All coalition calls" in t)
    assert line.endswith("webcal://calls.example.org/calendars/all.ics")
    assert "[all coalition calls, for Apple, Outlook or Thunderbird](webcal://calls.example.org/" \
        "calendars/all.ics)" in post.text
    assert email.html is not None  # the HTML's calendar links are this call's, as it says
    assert 'href="webcal://calls.example.org/calendars/jfa.ics"' in email.html


def test_html_is_escaped_and_text_is_not() -> None:
    hostile = replace(CALL, title='<script>alert("x")</script> & friends')
    email = render("announcement", "email", call=hostile, now=START - timedelta(days=7))
    assert email.html is not None and "<script>" not in email.html
    assert "&lt;script&gt;" in email.html and "&amp; friends" in email.html
    assert '<script>alert("x")</script> & friends' in email.text


def test_template_reaching_for_python_internals_is_refused() -> None:
    with pytest.raises(RenderError, match=r"today\.en\.md line 1: refused by the sandbox"):
        render("today", "forum", now=START, templates=with_case("sandbox_escape"))


def test_misspelled_variable_names_the_template_and_line() -> None:
    with pytest.raises(RenderError, match=r"tomorrow\.fr\.md line 2: .*'titel'"):
        render("tomorrow", "forum", "fr", now=START, templates=with_case("misspelled"))


def test_syntax_error_names_the_template_and_line() -> None:
    with pytest.raises(RenderError, match=r"followup\.en\.md line 3: "):
        render("followup", "forum", now=START, templates=with_case("syntax_error"))


def test_subject_with_a_line_break_is_refused() -> None:
    with pytest.raises(RenderError, match="the subject has a line break"):
        render("starts-soon", "email", now=START, templates=with_case("subject_newline"))


def test_organizers_template_replaces_only_its_namesake() -> None:
    own = with_case("override")
    assert render("announcement", "forum", now=START - timedelta(days=7), templates=own).text \
        == "Our own words: **Justice For All coalition call** is in 7 days.\n"
    assert "10:00 AM New York //" in render("today", "forum", now=START, templates=own).text


def test_check_lists_every_broken_template_once() -> None:
    broken = Templates([DATA / "templates" / case for case in
                        ("sandbox_escape", "misspelled", "syntax_error", "subject_newline")]
                       + [BUILTIN_TEMPLATES])
    problems = broken.check(["en", "fr"], sample_contexts)
    assert len(problems) == 4
    assert all(" line " in p or "line break" in p for p in problems)
    assert builtin().check(["en", "fr"], sample_contexts) == []


@pytest.mark.parametrize(("branch", "file"), [
    ("{% if occurrence.agenda %}{{ occurrence.agenda_text }}{% endif %}", "forum/today.en.md"),
    ("{% if occurrence.cancelled %}{{ nothing.here }}{% endif %}", "email/changed.en.txt"),
    ("{% if invite.change == 'agenda' %}{{ invite.agenda_of }}{% endif %}",
     "email/invitation.en.txt"),
    ("{% if call.repeats %}{{ call.repeats.every }}{% endif %}", "forum/tomorrow.en.md"),
])
def test_check_tries_the_branches_a_reminder_may_take(tmp_path: Path, branch: str,
                                                      file: str) -> None:
    """An organizer's template broken only where an occurrence has its own agenda, is
    cancelled, or the call meets weekly fails `check` (and so the daemon's start), not the
    day such a reminder is due."""
    own = tmp_path / file
    own.parent.mkdir(parents=True)
    own.write_text(("{% block subject %}S{% endblock %}{% block body %}" + branch
                    + "{% endblock %}") if file.startswith("email/") else branch + "\n")
    problems = Templates([tmp_path, BUILTIN_TEMPLATES]).check(["en"], sample_contexts)
    assert len(problems) == 1 and file.split("/")[1] in problems[0], problems


def test_invitation_templates_are_for_email_only() -> None:
    with pytest.raises(InvalidValue, match="is for email only"):
        builtin().render("invitation", "forum", "en", sample_context("en"))


SAME_DAY_MOVE = Occurrence(id=START, start=START + timedelta(hours=2),
                           end=START + timedelta(hours=3), zone=NEW_YORK, status=Status.MOVED)


@pytest.mark.parametrize(
    ("name", "channel", "lang", "expected"),
    [
        pytest.param("announcement", "email", "en",
                     "moved from Tuesday, November 13, 2018, 10:00 AM New York.",
                     id="announcement-email"),
        pytest.param("announcement", "forum", "en",
                     "moved from Tuesday, November 13, 2018, 10:00 AM New York.",
                     id="announcement-forum"),
        pytest.param("changed", "email", "en",
                     "of Tuesday, November 13, 2018, 10:00 AM New York has moved",
                     id="changed-email"),
        pytest.param("changed", "forum", "en",
                     "of Tuesday, November 13, 2018, 10:00 AM New York now takes place",
                     id="changed-forum"),
        pytest.param("changed", "email", "fr", "du mardi 13 novembre 2018, 10:00 (New York)",
                     id="changed-email-fr"),
    ],
)
def test_issue_17_a_move_within_the_same_day_says_the_old_time(
    name: str, channel: str, lang: str, expected: str
) -> None:
    """"on Tuesday, December 1, 2026 (moved from Tuesday, December 1, 2026)" said the same
    date twice and never the old time."""
    context = message_context(CALL, SAME_DAY_MOVE, lang=lang, reader=NEW_YORK,
                              now=START - timedelta(days=3))
    message = builtin().render(name, channel, lang, context)
    assert expected in message.text
    if message.html is not None:
        assert expected.replace("has moved", "has <strong>moved</strong>") in message.html


def test_a_move_to_another_day_says_only_the_old_date() -> None:
    moved = replace(SAME_DAY_MOVE, start=START + timedelta(days=1),
                    end=START + timedelta(days=1, hours=1))
    context = message_context(CALL, moved, lang="en", reader=NEW_YORK,
                              now=START - timedelta(days=3))
    text = builtin().render("announcement", "email", "en", context).text
    assert "Note that this call has moved from Tuesday, November 13, 2018." in text


def test_issue_17_an_invitation_for_a_same_day_move_says_the_old_time() -> None:
    context = message_context(CALL, SAME_DAY_MOVE, lang="en", reader=NEW_YORK,
                              now=START - timedelta(days=3))
    context["invite"] = {"again": True, "one_occurrence": True, "change": "occurrence"}
    text = builtin().render("invitation", "email", "en", context).text
    assert ("of Tuesday, November 13, 2018, 10:00 AM New York has moved to Tuesday, "
            "November 13, 2018, 12:00 PM New York") in text
