"""Issue 19: "I'll be there" / "Can't make it" for one occurrence, in one click from an email;
who is coming, for organizers (`coalition rsvp list`) and in /metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage

import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient

from scheduler import config
from scheduler.store import db
from scheduler.store.models import Subscriber
from scheduler.web.app import create_app
from tests.conftest import Coalition

SECRET = "a-test-secret-that-is-long-enough-to-sign-with"
SLUG = "justice-for-all-coalition-call"
MARCH = "20190312T140000Z"  # 10:00 New York on 12 March 2019, just after DST began


@dataclass
class Site:
    coalition: Coalition
    client: TestClient
    tokens: dict[str, str]

    def link(self, who: str, answer: str, stamp: str = MARCH) -> str:
        return f"/rsvp/{self.tokens[who]}/{SLUG}/{stamp}/{answer}"

    def answer(self, who: str, answer: str) -> int:
        link = self.link(who, answer)
        page = self.client.get(link).text
        token = re.search(r'name="form_token" value="([^"]+)"', page)
        assert token, page
        return self.client.post(link, data={"form_token": token.group(1)}).status_code

    def listed(self, on: str = "2019-03-12") -> dict[str, object]:
        ran = self.coalition("rsvp", "list", SLUG, "--on", on, "--json")
        assert ran.exit_code == 0, ran.stderr
        found: dict[str, object] = json.loads(ran.stdout)
        return found


@pytest.fixture
def site(organizer: Callable[[str], Coalition]) -> Iterator[Site]:
    coalition = organizer("reminders")
    settings = config.load(coalition.config)
    engine = db.open_database(settings.database_url())
    with Session(engine) as session:
        tokens = {s.email.split("@")[0]: s.token for s in session.exec(select(Subscriber))}
    with TestClient(create_app(settings, engine, secret=SECRET),
                    base_url="http://127.0.0.1:8080") as client:
        yield Site(coalition, client, tokens)
    engine.dispose()


def body(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def test_each_reminder_carries_the_members_own_answer_links(site: Site) -> None:
    assert site.coalition("run-once", "--now", "2019-03-05T15:00:00Z").exit_code == 0
    mails = {str(m["To"]): body(m) for m in site.coalition.inbox()}
    ada = next(text for to, text in mails.items() if "ada@" in to)
    assert f"http://127.0.0.1:8080{site.link('ada', 'yes')}" in ada
    assert f"http://127.0.0.1:8080{site.link('ada', 'no')}" in ada
    assert f"/manage/{site.tokens['ada']}" in ada


def test_following_the_link_records_nothing_the_button_records(site: Site) -> None:
    """A mail scanner opens links (GET, HEAD): only the button's POST counts."""
    assert site.client.get(site.link("ada", "yes")).status_code == 200
    assert site.client.head(site.link("ada", "yes")).status_code == 200
    assert site.listed()["coming"] == 0
    assert site.answer("ada", "yes") == 200
    listed = site.listed()
    assert (listed["coming"], listed["not_coming"]) == (1, 0)
    assert [a["email"] for a in listed["answers"]] == ["ada@example.org"]  # type: ignore[attr-defined]


def test_changing_ones_mind_replaces_the_answer(site: Site) -> None:
    site.answer("ada", "yes")
    site.answer("ada", "no")
    listed = site.listed()
    assert (listed["coming"], listed["not_coming"]) == (0, 1)
    page = site.client.get(site.link("ada", "yes")).text
    assert "Je ne pourrai pas venir" in page  # the answer so far (needs the catalogs merged)


def test_cant_make_it_means_no_starts_soon_but_the_other_member_gets_it(site: Site) -> None:
    assert site.answer("ada", "no") == 200
    assert site.coalition("run-once", "--now", "2019-03-12T13:31:00Z").exit_code == 0
    soon = [d["recipient"] for d in site.coalition.deliveries()
            if d["rule"] == "starts-soon" and d["channel"] == "email"]
    assert soon == ["bea@example.org"]


def test_the_answer_moves_with_the_occurrence(site: Site) -> None:
    site.answer("bea", "yes")
    ran = site.coalition("call", "move", SLUG, "--on", "2019-03-12", "--to", "2019-03-13 11:00")
    assert ran.exit_code == 0, ran.stderr
    listed = site.listed("2019-03-13")
    assert listed["coming"] == 1 and listed["status"] == "moved"
    assert listed["start"] == "2019-03-13T15:00:00+00:00"
    assert site.client.get(site.link("bea", "no")).status_code == 200  # the old link still works


def test_a_cancelled_occurrence_keeps_its_answers_marked(site: Site) -> None:
    site.answer("bea", "yes")
    assert site.coalition("call", "cancel", SLUG, "--on", "2019-03-12").exit_code == 0
    listed = site.listed()
    assert listed["coming"] == 1 and listed["status"] == "cancelled"
    text = site.coalition("rsvp", "list", SLUG, "--on", "2019-03-12").stdout
    assert "(cancelled): 1 coming, 0 not coming" in text and "bea@example.org" in text


@pytest.mark.parametrize("path", [
    pytest.param(f"/rsvp/forged-token-of-no-one-at-all/{SLUG}/{MARCH}/yes", id="token"),
    pytest.param("/rsvp/{ada}/" + SLUG + "/" + MARCH + "/maybe", id="answer"),
    pytest.param("/rsvp/{ada}/" + SLUG + "/20190313T140000Z/yes", id="not-an-occurrence"),
    pytest.param("/rsvp/{ada}/" + SLUG + "/yesterday/yes", id="stamp"),
    pytest.param("/rsvp/{ada}/no-such-call/" + MARCH + "/yes", id="call"),
])
def test_a_link_that_names_nothing_is_404(site: Site, path: str) -> None:
    link = path.replace("{ada}", site.tokens["ada"])
    assert site.client.get(link).status_code == 404
    assert site.client.post(link).status_code == 404


def test_a_post_from_another_site_or_without_the_form_token_records_nothing(
        site: Site) -> None:
    link = site.link("ada", "yes")
    site.client.get(link)
    assert site.client.post(link, headers={"Origin": "https://evil.example"}).status_code == 403
    assert site.client.post(link, data={"form_token": "forged"}).status_code == 403
    assert site.listed()["coming"] == 0


def test_metrics_count_the_answers(site: Site) -> None:
    site.answer("ada", "yes")
    site.answer("bea", "no")
    text = site.client.get("/metrics").text
    assert f'coalition_rsvp_answers{{answer="yes",call="{SLUG}"}} 1.0' in text
    assert f'coalition_rsvp_answers{{answer="no",call="{SLUG}"}} 1.0' in text


def test_rsvp_list_of_a_day_without_an_occurrence_is_one_line(site: Site) -> None:
    ran = site.coalition("rsvp", "list", SLUG, "--on", "2019-03-13")
    assert ran.exit_code == 2 and len(ran.stderr.splitlines()) == 1
    assert ran.stderr.startswith("error: ")


@pytest.mark.parametrize("lang", ["en", "fr", "es", "ar", "pt"])
def test_the_answer_page_renders_in_every_shipped_language(site: Site, lang: str) -> None:
    page = site.client.get(site.link("ada", "no") + f"?lang={lang}")
    assert page.status_code == 200 and f'<html lang="{lang}"' in page.text


def html_body(mail: EmailMessage) -> str:
    part = mail.get_body(("html",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def test_the_announcement_says_how_many_have_said_they_will_come(site: Site) -> None:
    """Each member in their language, in both parts of the email, and the forum post."""
    assert site.answer("ada", "yes") == 200
    assert site.answer("bea", "yes") == 200
    assert site.coalition("run-once", "--now", "2019-03-05T15:00:00Z").exit_code == 0
    mails = {str(m["To"]): m for m in site.coalition.inbox()}
    ada = next(m for to, m in mails.items() if "ada@" in to)
    bea = next(m for to, m in mails.items() if "bea@" in to)
    assert "2 membres ont annoncé leur venue.\n" in body(ada)  # Ada reads French
    assert "<p>2 membres ont annoncé leur venue.</p>" in html_body(ada)
    assert "2 members have said they will come.\nWe hope to see you there!" in body(bea)
    assert "<p>2 members have said they will come.</p>" in html_body(bea)
    (post,) = site.coalition.forum_posts(SLUG)
    assert "2 members have said they will come." in post.read_text(encoding="utf-8")


def test_only_those_coming_are_counted_and_nothing_is_said_before_anyone_is(
        site: Site) -> None:
    """"Can't make it" is no one coming: the line appears only once someone will be there."""
    assert site.answer("ada", "no") == 200
    assert site.coalition("run-once", "--now", "2019-03-05T15:00:00Z").exit_code == 0
    mails = site.coalition.inbox()
    assert len(mails) == 2
    for mail in mails:
        assert "venue" not in body(mail) and "will come" not in body(mail)
        assert "venue" not in html_body(mail) and "will come" not in html_body(mail)
    (post,) = site.coalition.forum_posts(SLUG)
    assert "will come" not in post.read_text(encoding="utf-8")


def test_the_today_preview_counts_who_is_coming_and_not_who_left(site: Site) -> None:
    def today(lang: str) -> str:
        ran = site.coalition("render", SLUG, "--on", "2019-03-12", "--template", "today",
                             "--channel", "email", "--lang", lang,
                             "--now", "2019-03-12T11:00:00Z")
        assert ran.exit_code == 0, ran.stderr
        return ran.stdout

    assert "will come" not in today("en")
    site.answer("ada", "yes")
    assert "1 member has said they will come." in today("en")
    assert "1 membre a annoncé sa venue." in today("fr")
    site.answer("bea", "yes")
    assert "2 members have said they will come." in today("en")
    assert site.client.post(f"/unsubscribe/{site.tokens['bea']}").status_code == 200
    assert "1 member has said they will come." in today("en")
