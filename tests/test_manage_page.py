"""Issue 19: the page where a member manages their reminders, from the link in every email."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient

from scheduler import config
from scheduler.store import db, preferences
from scheduler.store.models import Subscriber
from scheduler.web import signup
from scheduler.web.app import SECURITY_HEADERS, create_app
from scheduler.web.site import check_pages
from tests.conftest import Coalition

SECRET = "a-test-secret-that-is-long-enough-to-sign-with"
SLUG = "justice-for-all-coalition-call"


@dataclass
class Site:
    coalition: Coalition
    client: TestClient
    token: str
    settings: config.Settings

    @property
    def link(self) -> str:
        return f"/manage/{self.token}"

    def form(self, **changes: object) -> dict[str, object]:
        """The page's form as it is filled in, with `changes`."""
        page = self.client.get(self.link).text
        token = re.search(r'name="form_token" value="([^"]+)"', page)
        assert token
        data: dict[str, object] = {
            "form_token": token.group(1), "name": "Ada", "language": "fr",
            "zone": "Africa/Kinshasa", "all": "yes",
            f"reminders-{SLUG}": ["announcement", "tomorrow", "starts-soon", "followup"]}
        data.update(changes)
        return data

    def shown(self, email: str = "ada@example.org") -> dict[str, object]:
        ran = self.coalition("subscriber", "show", email, "--json")
        assert ran.exit_code == 0, ran.stderr
        found: dict[str, object] = json.loads(ran.stdout)
        return found


@pytest.fixture
def site(organizer: Callable[[str], Coalition]) -> Iterator[Site]:
    coalition = organizer("reminders")
    settings = config.load(coalition.config)
    engine = db.open_database(settings.database_url())
    with Session(engine) as session:
        token = session.exec(select(Subscriber.token).where(
            Subscriber.email == "ada@example.org")).one()
    with TestClient(create_app(settings, engine, secret=SECRET),
                    base_url="http://127.0.0.1:8080") as client:
        yield Site(coalition, client, token, settings)
    engine.dispose()


def test_the_link_shows_the_members_choices_in_their_language(site: Site) -> None:
    page = site.client.get(site.link)
    assert page.status_code == 200
    assert '<html lang="fr"' in page.text  # Ada reads French
    assert 'value="Ada"' in page.text and "ada@example.org" in page.text
    assert '<option value="Africa/Kinshasa" selected>' in page.text
    assert "Gérer vos rappels" in page.text  # needs the catalogs merged (.translations-19.json)
    for name in ("announcement", "tomorrow", "starts-soon", "followup"):
        assert f'id="reminder-{SLUG}-{name}" name="reminders-{SLUG}" type="checkbox" ' \
               f'value="{name}" checked' in page.text
    for header, value in SECURITY_HEADERS.items():
        assert page.headers[header] == value
    assert page.headers["Cache-Control"] == "no-store"


def test_each_reminder_is_named_in_words(site: Site) -> None:
    page = site.client.get(f"{site.link}?lang=en").text
    for words in ("The announcement, a week before", "The day before", "Just before it starts",
                  "The recording and notes, afterwards"):
        assert f">{words}</label>" in page


def test_every_field_has_a_label_and_the_groups_are_fieldsets(site: Site) -> None:
    page = site.client.get(site.link).text
    ids = re.findall(r'<(?:input|select)[^>]* id="([^"]+)"', page)
    assert ids and all(f'<label for="{i}"' in page for i in ids)
    assert page.count("<fieldset") == page.count("<legend>") == 2  # calls, one call's emails


def test_saving_turns_off_tomorrow_and_changes_language_and_zone(site: Site) -> None:
    response = site.client.post(site.link, data=site.form(
        language="en", zone="Asia/Jakarta",
        **{f"reminders-{SLUG}": ["announcement", "starts-soon"]}))
    assert response.status_code == 200
    assert 'role="status"' in response.text and '<html lang="en"' in response.text
    shown = site.shown()
    assert (shown["language"], shown["timezone"]) == ("en", "Asia/Jakarta")
    assert shown["reminders"] == {SLUG: ["announcement", "starts-soon"]}


def test_a_reminder_turned_off_after_it_was_queued_is_cancelled_at_the_next_pass(
        site: Site) -> None:
    """The announcement (due at 15:00) is queued at 14:50; Ada turns it off; the pass at 14:51
    cancels hers. (A call no longer followed: test_member_choices.)"""
    assert site.coalition("run-once", "--now", "2019-03-05T14:50:00Z").exit_code == 0
    before = {d["recipient"] for d in site.coalition.deliveries("--status", "pending")}
    assert "ada@example.org" in before
    response = site.client.post(site.link, data=site.form(
        all="", **{f"reminders-{SLUG}": []}, calls=[]))
    assert response.status_code == 400  # at least one call: leaving is the other link
    response = site.client.post(site.link, data=site.form(
        **{f"reminders-{SLUG}": ["followup"]}))
    assert response.status_code == 200
    assert site.coalition("run-once", "--now", "2019-03-05T14:51:00Z").exit_code == 0
    pending = {d["recipient"] for d in site.coalition.deliveries("--status", "pending")}
    assert "ada@example.org" not in pending
    cancelled = site.coalition.deliveries("--status", "cancelled")
    assert "ada@example.org" in {d["recipient"] for d in cancelled}


def test_a_post_without_the_forms_token_changes_nothing(site: Site) -> None:
    data = site.form(language="en")
    data["form_token"] = "forged"
    assert site.client.post(site.link, data=data).status_code == 403
    assert site.shown()["language"] == "fr"


def test_a_post_from_another_site_changes_nothing(site: Site) -> None:
    response = site.client.post(site.link, data=site.form(language="en"),
                                headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert site.shown()["language"] == "fr"


@pytest.mark.parametrize(("field", "value"), [
    pytest.param("zone", "Mars/Olympus", id="zone"),
    pytest.param("language", "xx", id="language"),
    pytest.param(f"reminders-{SLUG}", ["yesterday"], id="reminder"),
])
def test_a_bad_field_is_one_clear_400_and_changes_nothing(site: Site, field: str,
                                                          value: object) -> None:
    response = site.client.post(site.link, data=site.form(**{field: value}))
    assert response.status_code == 400 and 'role="alert"' in response.text
    assert site.shown()["timezone"] == "Africa/Kinshasa"


@pytest.mark.parametrize("token", ["not-a-real-token-at-all", "x", "..%2F..%2Fetc"])
def test_a_forged_link_is_404(site: Site, token: str) -> None:
    assert site.client.get(f"/manage/{token}").status_code == 404


def test_the_link_works_until_they_unsubscribe(site: Site) -> None:
    assert site.client.post(f"/unsubscribe/{site.token}").status_code == 200
    assert site.client.get(site.link).status_code == 404


def test_a_new_token_makes_the_old_link_useless(site: Site) -> None:
    engine = db.open_database(site.settings.database_url())
    with Session(engine) as session:
        ada = session.exec(select(Subscriber).where(
            Subscriber.email == "ada@example.org")).one()
        new = preferences.rotate(session, ada)
    engine.dispose()
    assert site.client.get(site.link).status_code == 404
    assert site.client.get(f"/manage/{new}").status_code == 200


def test_every_reminder_email_links_to_the_members_own_manage_page(site: Site) -> None:
    assert site.coalition("run-once", "--now", "2019-03-05T15:00:00Z").exit_code == 0
    mails = site.coalition.inbox()
    assert mails
    for mail in mails:
        to = str(mail["To"])
        with Session(db.open_database(site.settings.database_url())) as session:
            token = session.exec(select(Subscriber.token).where(
                Subscriber.email == re.sub(r".*<|>.*", "", to))).one()
        raw = mail.as_string()
        assert f"/manage/{token}" in raw.replace("=\n", "")


def test_the_confirmation_page_links_to_the_manage_page(site: Site) -> None:
    wanted = signup.Request(email="amina@example.org", name="Amina", language="fr",
                            timezone="Africa/Kinshasa", calls=None)
    link = "/confirm/" + signup.Links(SECRET, max_age_hours=1).confirmation(wanted)
    page = site.client.get(link).text
    token = re.search(r'name="form_token" value="([^"]+)"', page)
    assert token
    done = site.client.post(link, data={"form_token": token.group(1)})
    assert done.status_code == 200
    found = re.search(r'href="(/manage/[^"]+)"', done.text)
    assert found and site.client.get(found.group(1)).status_code == 200


@pytest.mark.parametrize("lang", ["en", "fr", "es", "ar", "pt"])
def test_the_page_renders_in_every_shipped_language(site: Site, lang: str) -> None:
    page = site.client.get(f"{site.link}?lang={lang}")
    assert page.status_code == 200 and f'<html lang="{lang}"' in page.text
    if lang == "ar":
        assert 'dir="rtl"' in page.text


def test_check_finds_no_problem_in_the_manage_page(site: Site) -> None:
    assert check_pages(site.settings) == []
