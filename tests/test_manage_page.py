"""Issue 19: the page where a member manages their reminders, from the link in every email."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx2
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
NOW = datetime(2019, 3, 5, 14, 50, 30, tzinfo=UTC)  # the site's clock: a week before 12 March
MARCH = "20190312T140000Z"  # the next occurrence: 10:00 New York on 12 March 2019


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
    with TestClient(create_app(settings, engine, secret=SECRET, clock=lambda: NOW),
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
    choices = page.split('<form class="signup manage"')[1].split("</form>")[0]
    assert choices.count("<fieldset") == choices.count("<legend>") == 2  # calls, its emails
    assert page.count("<fieldset") == page.count("<legend>") == 2 + 3  # and 3 occurrences


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


# --- "I'll be there" / "Can't make it" from the page


def answer_forms(page: str) -> list[str]:
    """The page's forms for one occurrence each, in the order shown."""
    return re.findall(r'<form class="answer".*?</form>', page, flags=re.S)


def answered(site: Site, occurrence: str, answer: str, **changes: str) -> httpx2.Response:
    """Presses one occurrence's button, as the browser sends it."""
    token = re.search(r'name="form_token" value="([^"]+)"', site.client.get(site.link).text)
    assert token
    data = {"form_token": token.group(1), "occurrence": occurrence, "answer": answer}
    return site.client.post(f"{site.link}?lang=en", data={**data, **changes})


def listed(site: Site, on: str = "2019-03-12") -> dict[str, object]:
    ran = site.coalition("rsvp", "list", SLUG, "--on", on, "--json")
    assert ran.exit_code == 0, ran.stderr
    found: dict[str, object] = json.loads(ran.stdout)
    return found


def test_the_page_offers_the_next_three_occurrences_each_in_a_fieldset_naming_its_date(
        site: Site) -> None:
    page = site.client.get(f"{site.link}?lang=en").text
    forms = answer_forms(page)
    assert len(forms) == 3
    for form, date in zip(forms, ("Tuesday, March 12, 2019", "Tuesday, April 9, 2019",
                                  "Tuesday, May 14, 2019"), strict=True):
        legend = re.search(r"<legend>(.*?)</legend>", form, flags=re.S)
        assert legend and date in legend.group(1) and "3:00 PM Kinshasa" in legend.group(1)
        assert "Justice For All coalition call" in legend.group(1)
        assert '<button type="submit" name="answer" value="yes">I\'ll be there</button>' in form
        assert '<button type="submit" name="answer" value="no">Can\'t make it</button>' in form
        assert 'name="form_token"' in form and "No answer yet" in form
    assert "<script" not in "".join(forms)


def test_cant_make_it_from_the_page_is_recorded_as_from_an_email(site: Site) -> None:
    """The same record as the RSVP page's: listed for the organizer, shown on the page, and
    the member gets no "starts soon" for that occurrence; a second press changes it."""
    response = answered(site, f"{SLUG}/{MARCH}", "no")
    assert response.status_code == 200
    text = response.text
    assert re.search(r'<div class="saved" role="status"><p>Noted: you cannot make it to '
                     r"<bdi>Justice For All coalition call</bdi> on Tuesday, March 12, 2019\.",
                     text)
    assert "Your answer so far: Can't make it" in answer_forms(text)[0]
    assert "No answer yet" in answer_forms(text)[1]
    found = listed(site)
    assert (found["coming"], found["not_coming"]) == (0, 1)
    assert site.coalition("run-once", "--now", "2019-03-12T13:31:00Z").exit_code == 0
    soon = [d["recipient"] for d in site.coalition.deliveries()
            if d["rule"] == "starts-soon" and d["channel"] == "email"]
    assert soon == ["bea@example.org"]
    text = answered(site, f"{SLUG}/{MARCH}", "yes").text
    assert "Noted: you will be at <bdi>Justice For All coalition call</bdi> on Tuesday" in text
    assert "Your answer so far: I'll be there" in answer_forms(text)[0]
    found = listed(site)
    assert (found["coming"], found["not_coming"]) == (1, 0)


def test_a_cancelled_occurrence_is_not_offered_and_the_one_after_is(site: Site) -> None:
    assert site.coalition("call", "cancel", SLUG, "--on", "2019-04-09").exit_code == 0
    forms = answer_forms(site.client.get(f"{site.link}?lang=en").text)
    assert [re.findall(r'name="occurrence" value="[^/]+/(\w+)"', f) for f in forms] == [
        [MARCH], ["20190514T140000Z"], ["20190611T140000Z"]]


def test_only_the_calls_the_member_follows_are_offered(site: Site) -> None:
    ran = site.coalition("call", "add", "--title", "Media call", "--start", "2019-03-07 09:00",
                         "--tz", "Europe/Brussels", "--rrule", "FREQ=WEEKLY")
    assert ran.exit_code == 0, ran.stderr
    page = site.client.get(f"{site.link}?lang=en").text
    assert len(answer_forms(page)) == 6
    assert "Media call" in answer_forms(page)[0]  # soonest first: Thursday 7 March
    response = site.client.post(site.link, data=site.form(all="", calls=[SLUG]))
    assert response.status_code == 200
    forms = answer_forms(response.text)
    assert len(forms) == 3 and not any("Media call" in f for f in forms)


def test_an_answer_without_the_forms_token_or_from_another_site_records_nothing(
        site: Site) -> None:
    assert answered(site, f"{SLUG}/{MARCH}", "yes",
                    form_token="forged").status_code == 403
    token = re.search(r'name="form_token" value="([^"]+)"', site.client.get(site.link).text)
    assert token
    response = site.client.post(site.link, headers={"Origin": "https://evil.example"}, data={
        "form_token": token.group(1), "occurrence": f"{SLUG}/{MARCH}", "answer": "yes"})
    assert response.status_code == 403
    assert listed(site)["answers"] == []


@pytest.mark.parametrize(("occurrence", "answer", "status"), [
    pytest.param(f"{SLUG}/{MARCH}", "maybe", 400, id="answer"),
    pytest.param(f"{SLUG}/20190313T140000Z", "yes", 404, id="not-an-occurrence"),
    pytest.param(f"no-such-call/{MARCH}", "yes", 404, id="call"),
    pytest.param("", "yes", 404, id="nothing"),
])
def test_an_answer_that_names_nothing_records_nothing(site: Site, occurrence: str, answer: str,
                                                       status: int) -> None:
    response = answered(site, occurrence, answer)
    assert response.status_code == status
    assert listed(site)["answers"] == []
    assert site.shown()["language"] == "fr"  # and the member's choices are as they were


@pytest.mark.parametrize(("lang", "heading", "yes", "no"), [
    ("fr", "Vos prochains appels", "Je serai là", "Je ne pourrai pas venir"),
    ("es", "Tus próximas sesiones", "Allí estaré", "No podré ir"),
    ("pt", "As suas próximas sessões", "Vou estar presente", "Não vou poder ir"),
    ("ar", "جلساتك القادمة", "سأحضر", "لن أتمكن من الحضور"),
])
def test_the_answers_are_offered_in_every_shipped_language(site: Site, lang: str, heading: str,
                                                           yes: str, no: str) -> None:
    page = site.client.get(f"{site.link}?lang={lang}").text
    assert f'<h2 id="next-calls">{heading}</h2>' in page
    assert f'value="yes">{yes}</button>' in page and f'value="no">{no}</button>' in page
