"""Email sign-up with double opt-in: the form, the confirmation email and its signed link,
CSRF, rate limits, and what an unsubscribed address can and cannot do afterwards."""

from __future__ import annotations

import json
import mailbox
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import create_engine
from starlette.testclient import TestClient

from scheduler import config
from scheduler.errors import SchedulerError
from scheduler.store import db
from scheduler.web import signup
from scheduler.web.app import create_app
from tests.conftest import Coalition, Ran, read_maildir

SECRET = "s" * 40
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@dataclass
class Site:
    coalition: Coalition
    client: TestClient
    maildir: Path

    def form_token(self, path: str = "/subscribe") -> str:
        page = self.client.get(path).text
        found = re.search(r'name="form_token" value="([^"]+)"', page)
        assert found, page
        return found.group(1)

    def sign_up(self, **fields: str | list[str]) -> Ran:
        data: dict[str, str | list[str]] = {
            "form_token": self.form_token(), "email": "amina@example.org", "name": "Amina",
            "language": "fr", "zone": "Africa/Kinshasa", "all": "yes", **fields}
        response = self.client.post("/subscribe", data=data)
        return Ran(response.status_code, response.text, response.headers.get("retry-after", ""))

    def mails(self) -> list[EmailMessage]:
        return read_maildir(self.maildir)

    def link(self) -> str:
        """The link in the one email that came since the last call (which it takes away)."""
        (mail,) = self.mails()
        mailbox.Maildir(self.maildir).clear()
        body = mail.get_body(("plain",))
        assert isinstance(body, EmailMessage)
        found = re.search(r"http://127\.0\.0\.1:8080(/confirm/\S+)", body.get_content())
        assert found
        return found.group(1)

    def confirm(self, link: str) -> Ran:
        response = self.client.post(link, data={"form_token": self.form_token(link)})
        return Ran(response.status_code, response.text, "")

    def subscribers(self) -> dict[str, dict[str, object]]:
        found = json.loads(self.coalition("subscriber", "list", "--json").stdout)
        return {s["email"]: s for s in found}


@pytest.fixture
def site(organizer: Callable[[str], Coalition]) -> Iterator[Site]:
    coalition = organizer("members")
    settings = config.load(coalition.config)
    engine = db.open_database(settings.database_url())
    with TestClient(create_app(settings, engine, secret=SECRET),
                    headers={"Accept-Language": "fr-FR,fr;q=0.9"}) as client:  # a French reader
        yield Site(coalition, client, settings.maildir)
    engine.dispose()


def test_sign_up_stores_nothing_until_the_link_is_confirmed(site: Site) -> None:
    sent = site.sign_up(calls=["justice"], all="")
    assert sent.exit_code == 200 and "Consultez votre boîte de réception" in sent.stdout
    (mail,) = site.mails()
    assert mail["To"] == "Amina <amina@example.org>" and mail["Auto-Submitted"] == "auto-generated"
    assert mail["Subject"] == "Confirmez vos rappels des appels de la coalition"
    body = mail.get_body(("plain",))
    assert body is not None
    assert "Justice For All coalition call" in body.get_content()
    assert site.subscribers() == {}
    link = site.link()
    page = site.client.get(link)
    assert page.status_code == 200 and "<button" in page.text
    assert "Justice For All coalition call" in page.text and "amina@example.org" in page.text
    assert site.subscribers() == {}  # opening the link (a mail scanner might) is not confirming
    done = site.confirm(link)
    assert done.exit_code == 200 and "Vous êtes abonné·e" in done.stdout
    amina = site.subscribers()["amina@example.org"]
    assert (amina["status"], amina["language"], amina["timezone"], amina["calls"]) == (
        "confirmed", "fr", "Africa/Kinshasa", ["justice"])
    assert site.confirm(link).exit_code == 200  # twice is harmless
    assert len(site.subscribers()) == 1


def test_signing_up_again_looks_the_same_and_changes_nothing_until_confirmed(site: Site) -> None:
    first = site.sign_up()
    site.confirm(site.link())
    again = site.sign_up(zone="Asia/Jakarta")
    site.link()  # a second link for amina, not confirmed: her zone stays
    stranger = site.sign_up(email="nobody@example.org", zone="Asia/Jakarta")
    assert again.exit_code == stranger.exit_code == first.exit_code == 200
    assert again.stdout.replace("amina@", "nobody@") == stranger.stdout  # reveals nothing
    assert site.subscribers()["amina@example.org"]["timezone"] == "Africa/Kinshasa"
    assert "nobody@example.org" not in site.subscribers()
    site.confirm(site.link())
    assert site.subscribers()["nobody@example.org"]["status"] == "confirmed"


def test_a_new_link_from_a_subscribed_address_updates_its_choices(site: Site) -> None:
    site.sign_up()
    site.confirm(site.link())
    site.sign_up(zone="Asia/Jakarta", language="en")
    site.confirm(site.link())
    amina = site.subscribers()["amina@example.org"]
    assert (amina["timezone"], amina["language"], amina["calls"]) == ("Asia/Jakarta", "en", None)


def test_a_domain_beyond_ascii_is_confirmed_in_its_ascii_form(site: Site) -> None:
    """email-validator gives the IDNA form; it is what is mailed to and stored."""
    assert site.sign_up(email="Amina@Exémple.fr").exit_code == 200
    (mail,) = site.mails()
    assert mail["To"] == "Amina <amina@xn--exmple-cva.fr>"
    assert site.confirm(site.link()).exit_code == 200
    assert list(site.subscribers()) == ["amina@xn--exmple-cva.fr"]


def test_a_form_without_its_token_is_refused(site: Site) -> None:
    for token in ("", "forged", signup.Links("another secret" * 3, max_age_hours=1).form_token(
            site.client.cookies.get("form") or "x")):
        refused = site.sign_up(form_token=token)
        assert refused.exit_code == 403 and "Ce formulaire a expiré" in refused.stdout
        assert 'value="amina@example.org"' in refused.stdout  # what they typed is kept
    assert site.mails() == []
    fresh = TestClient(site.client.app)  # another browser: no cookie, so no form of ours
    response = fresh.post("/subscribe", data={"form_token": site.form_token(), "email": "a@b.org",
                                              "zone": "UTC", "all": "yes"})
    assert response.status_code == 403 and site.mails() == []


@pytest.mark.parametrize(("fields", "field", "says"), [
    ({"email": "amina at example.org"}, "email", "L’adresse e-mail n’est pas valide."),
    ({"email": "amina@example.org\r\nBcc: x@example.org"}, "email",
     "L’adresse e-mail n’est pas valide."),
    ({"email": "amina@example"}, "email", "L’adresse e-mail n’est pas valide."),
    ({"email": "amina@exa_mple.org"}, "email", "L’adresse e-mail n’est pas valide."),
    ({"zone": "Mars/Olympus_Mons"}, "zone", "Veuillez choisir un fuseau horaire dans la liste."),
    ({"language": "de"}, "language", "Veuillez choisir une langue dans la liste."),
    ({"all": "", "calls": []}, "calls", "Veuillez choisir au moins un appel, ou tous les appels."),
    ({"all": "", "calls": ["nope"]}, "calls", "Veuillez choisir au moins un appel"),
    ({"name": "x" * 300}, "name", "Le nom doit tenir sur une ligne de 200 caractères au plus."),
    ({"name": "Am\x00ina"}, "name", "Le nom doit tenir sur une ligne"),  # issue 14
])
def test_bad_input_is_a_clear_400_and_sends_nothing(
        site: Site, fields: dict[str, str | list[str]], field: str, says: str) -> None:
    refused = site.sign_up(**fields)
    assert refused.exit_code == 400, refused.stdout
    assert 'role="alert"' in refused.stdout and says in refused.stdout
    if field != "zone":  # the zone is a list to choose from
        marked = re.search(r'<[^>]*aria-invalid="true"[^>]*>', refused.stdout)
        assert marked and (f'name="{field}"' in marked.group(0) or field == "calls")
    assert "Traceback" not in refused.stdout and site.mails() == []


@pytest.mark.parametrize("damage", [
    lambda link: link[:-3],                       # cut short by a mail program
    lambda link: link[:-5] + "AAAAA",             # changed
    lambda link: "/confirm/" + "x" * 60,          # made up
])
def test_a_forged_or_damaged_link_is_a_400(site: Site, damage: Callable[[str], str]) -> None:
    site.sign_up()
    page = site.client.get(damage(site.link()))
    assert page.status_code == 400 and "Ce lien de confirmation n’est pas valide" in page.text
    assert site.subscribers() == {}


def test_a_link_expires_after_the_configured_hours(site: Site) -> None:
    with time_machine.travel(NOW, tick=False):
        site.sign_up()
        link = site.link()
    with time_machine.travel(NOW + timedelta(hours=47, minutes=59), tick=False):
        assert site.client.get(link).status_code == 200
        token = site.form_token(link)
    with time_machine.travel(NOW + timedelta(hours=48, minutes=1), tick=False):
        page = site.client.get(link)
        assert page.status_code == 400 and "Ce lien de confirmation a expiré" in page.text
        assert site.client.post(link, data={"form_token": token}).status_code == 400
    assert site.subscribers() == {}


def test_an_old_link_does_not_undo_an_unsubscribe(site: Site) -> None:
    with time_machine.travel(NOW, tick=False):
        site.sign_up()
        link = site.link()
        done = site.confirm(link)
    unsubscribe = re.search(r'href="(/unsubscribe/[^"]+)"', done.stdout)
    assert unsubscribe
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        assert site.client.post(unsubscribe.group(1)).status_code == 200
        assert site.subscribers()["amina@example.org"]["status"] == "unsubscribed"
        again = site.confirm(link)
    assert again.exit_code == 400
    assert "Vous vous êtes désabonné·e après l’envoi de ce lien" in again.stdout
    assert site.subscribers()["amina@example.org"]["status"] == "unsubscribed"


def test_sign_up_is_rate_limited_per_address_and_per_ip(site: Site) -> None:
    with time_machine.travel(NOW, tick=False):
        for _ in range(3):
            assert site.sign_up().exit_code == 200
        limited = site.sign_up()
        assert limited.exit_code == 429 and "Trop d’inscriptions" in limited.stdout
        assert int(limited.stderr) > 0  # Retry-After
        for number in range(6):  # ten in all from this IP
            assert site.sign_up(email=f"person{number}@example.org").exit_code == 200
        assert site.sign_up(email="someone.else@example.org").exit_code == 429
    assert len(site.mails()) == 9
    with time_machine.travel(NOW + timedelta(hours=1, minutes=1), tick=False):
        assert site.sign_up().exit_code == 200


def test_a_failed_confirmation_email_says_so(site: Site, tmp_path: Path) -> None:
    path = site.coalition.config
    path.write_text(path.read_text().replace('transport = "maildir"', 'transport = "smtp"', 1)
                    .replace("port = 25", "port = 9", 1))
    settings = config.load(path)
    site.client = TestClient(create_app(settings, db.open_database(settings.database_url()),
                                        secret=SECRET), headers={"Accept-Language": "fr"})
    failed = site.sign_up()
    assert failed.exit_code == 503 and "Nous n’avons pas pu envoyer l’e-mail" in failed.stdout


def test_the_secret_comes_from_the_environment_or_beside_the_sqlite_file(
        site: Site, monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> None:
    settings = config.load(site.coalition.config)
    engine = db.open_database(settings.database_url())
    monkeypatch.delenv("COALITION_WEB_SECRET", raising=False)
    made = signup.site_secret(settings, engine)
    path = Path(f"{engine.url.database}.secret")
    assert len(made) >= 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert signup.site_secret(settings, engine) == made  # kept across restarts
    monkeypatch.setenv("COALITION_WEB_SECRET", "short")
    with pytest.raises(SchedulerError, match="COALITION_WEB_SECRET is 5 characters"):
        signup.site_secret(settings, engine)
    monkeypatch.setenv("COALITION_WEB_SECRET", SECRET)
    assert signup.site_secret(settings, engine) == SECRET
    monkeypatch.delenv("COALITION_WEB_SECRET")
    shared = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with pytest.raises(SchedulerError, match="set COALITION_WEB_SECRET: every daemon"):
        signup.site_secret(settings, shared)


def test_check_reads_the_confirmation_email_too(coalition: Coalition) -> None:
    path = coalition.config
    (path.parent / "own" / "email").mkdir(parents=True)
    (path.parent / "own" / "email" / "confirm.en.txt").write_text(
        "{% block subject %}Confirm {{ adress }}{% endblock %}\n{% block body %}{% endblock %}\n")
    path.write_text(path.read_text().replace('folder = ""', 'folder = "own"'))
    checked = coalition("check")
    assert checked.exit_code != 0
    said = checked.stderr + checked.stdout
    assert "own/email/confirm.en.txt line 1: 'adress' is undefined" in said
