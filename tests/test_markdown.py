"""Issue 17, items 2 and 3: Markdown notes and descriptions, and what a follow-up offers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from scheduler import config
from scheduler.config import BUILTIN_TEMPLATES
from scheduler.core.recurrence import Occurrence, Status
from scheduler.delivery.render import (
    CallFacts,
    Message,
    Templates,
    markdown_html,
    markdown_text,
    message_context,
)
from scheduler.store import db
from scheduler.web.app import create_app
from tests.conftest import Coalition

START = datetime(2018, 11, 13, 15, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")
CALL = CallFacts(
    slug="jfa", title="Justice For All coalition call", description="",
    register_url="https://example.org/register", join_url="https://example.org/join",
    zones=("America/New_York", "Europe/Brussels"),
    feed_url="https://calls.example.org/calendars/jfa.ics",
)
OCCURRENCE = Occurrence(id=START, start=START, end=START + timedelta(hours=1), zone=NEW_YORK,
                        status=Status.CONFIRMED)
NOTES = "## Notes\r\n\r\nWe agreed on **HLPF**:  \n\n\n\n- first point\n- second point\n"


def email(name: str, *, call: CallFacts = CALL, notes: str | None = None,
          recording: str | None = None, now: datetime = START - timedelta(days=3)) -> Message:
    context = message_context(call, OCCURRENCE, lang="en", reader=NEW_YORK, now=now,
                              notes=notes, recording_url=recording)
    return Templates([BUILTIN_TEMPLATES]).render(name, "email", "en", context)


def test_issue_17_followup_notes_are_markdown_in_the_html_part() -> None:
    """`--notes notes.md` put "## Notes" and "**HLPF**" in the HTML as text, and ran the list
    together into one paragraph."""
    html = email("followup", notes=NOTES, now=START + timedelta(hours=2)).html
    assert html is not None
    assert "<h2>Notes</h2>" in html and "<strong>HLPF</strong>" in html
    assert "<li>first point</li>\n<li>second point</li>" in html
    assert "##" not in html and "**" not in html


def test_issue_17_followup_notes_stay_readable_markdown_in_the_text_part() -> None:
    """The plain text keeps the Markdown source, its line endings and blank lines normalised."""
    text = email("followup", notes=NOTES, now=START + timedelta(hours=2)).text
    assert "## Notes\n\nWe agreed on **HLPF**:\n\n- first point\n- second point" in text
    assert "\r" not in text


def test_issue_17_multi_line_description_keeps_its_lines_in_html() -> None:
    """A description of several lines collapsed to one line in HTML emails."""
    call = replace(CALL, description="Agenda:\n\n1. Introductions\n2. HLPF preparation")
    html = email("announcement", call=call).html
    assert html is not None
    assert "<p>Agenda:</p>\n<ol>\n<li>Introductions</li>\n<li>HLPF preparation</li>\n</ol>" in html


@pytest.mark.parametrize(
    ("source", "refused"),
    [
        pytest.param("<script>alert(1)</script>", "<script", id="script"),
        pytest.param("<style>body { display: none }</style>", "<style", id="style"),
        pytest.param('<img src="x" onerror="alert(1)">', "<img", id="event-attribute"),
        pytest.param("[x](javascript:alert(1))", 'href="javascript:', id="javascript-link"),
        pytest.param("[x](JAVASCRIPT:alert(1))", "href=", id="javascript-upper-case"),
        pytest.param("[x](vbscript:msgbox(1))", "href=", id="vbscript-link"),
        pytest.param("[x](data:text/html;base64,PHNjcmlwdD4=)", "href=", id="data-link"),
        pytest.param("<a href='https://x.org' onclick='alert(1)'>x</a>", "<a ", id="raw-link"),
    ],
)
def test_markdown_html_is_inert(source: str, refused: str) -> None:
    """An organizer's notes are trusted text, but no script, style or event attribute and
    no script link survives in the HTML."""
    html = markdown_html(source)
    assert refused not in html.lower()


def test_markdown_in_the_html_email_is_inert() -> None:
    """The same through the follow-up template: the notes come out escaped, as text."""
    html = email("followup", notes="<script>alert(1)</script> [x](javascript:alert(1))",
                 now=START + timedelta(hours=2)).html
    assert html is not None
    assert "<script>" not in html and 'href="javascript:' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_markdown_keeps_ordinary_links() -> None:
    assert markdown_html("[agenda](https://example.org/a)") == (
        '<p><a href="https://example.org/a">agenda</a></p>')


def test_markdown_text_is_the_normalised_source() -> None:
    assert markdown_text("  \n# Title  \r\n\r\n\r\n\r\ntext\n\n") == "# Title\n\ntext"


def test_issue_17_followup_html_offers_no_registration_or_calendar_for_the_ended_call() -> None:
    """The follow-up's HTML part offered "Register for free" and "Add to your calendar" for
    the call that had just ended: it offers the recording and notes."""
    html = email("followup", notes="Notes.", recording="https://example.org/recording",
                 now=START + timedelta(hours=2)).html
    assert html is not None
    assert "Register for free" not in html and "Add to your calendar" not in html
    assert "https://example.org/register" not in html
    assert 'href="https://example.org/recording"' in html and "<p>Notes.</p>" in html


def test_followup_html_keeps_the_unsubscribe_link() -> None:
    context = message_context(CALL, OCCURRENCE, lang="en", reader=NEW_YORK,
                              now=START + timedelta(hours=2), notes="Notes.")
    context["unsubscribe"] = "https://calls.example.org/unsubscribe/abc"
    html = Templates([BUILTIN_TEMPLATES]).render("followup", "email", "en", context).html
    assert html is not None and 'href="https://calls.example.org/unsubscribe/abc"' in html


def test_issue_17_members_page_shows_a_multi_line_description_as_markdown(
    organizer: Callable[[str], Coalition],
) -> None:
    """A description of several lines collapsed to one line on the members' page."""
    coalition = organizer("members")
    edited = coalition("call", "edit", "justice", "--description",
                       "Agenda:\n\n- Introductions\n- **HLPF** preparation")
    assert edited.exit_code == 0, edited.stderr
    settings = config.load(coalition.config)
    engine = db.open_database(settings.database_url())
    try:
        with TestClient(create_app(settings, engine, secret="s" * 40)) as client:
            page = client.get("/").text
    finally:
        engine.dispose()
    assert ('<div class="description" dir="auto"><p>Agenda:</p>\n<ul>\n<li>Introductions</li>\n'
            "<li><strong>HLPF</strong> preparation</li>\n</ul></div>") in page


def test_issue_17_an_image_in_notes_is_a_link_not_a_remote_load() -> None:
    """A remote image in an email is loaded when it is opened: the sender learns who read it,
    and when. Organizers' Markdown may hold images; the HTML shows each as a link named by
    its alt text (an inline data: image as its alt text alone), never as <img>."""
    html = markdown_html("Our ![group photo](https://tracker.example/p.png \"July\") and "
                         "![](https://example.org/chart.png) and "
                         "![logo](data:image/png;base64,iVBORw0KGgo=)")
    assert "<img" not in html and "data:" not in html
    assert '<a href="https://tracker.example/p.png">group photo</a>' in html
    assert '<a href="https://example.org/chart.png">https://example.org/chart.png</a>' in html
    assert "and logo</p>" in html
    followup = email("followup", notes="![me](https://tracker.example/p.png?id=ada)")
    assert followup.html is not None and "<img" not in followup.html
