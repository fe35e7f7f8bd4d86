"""Issue 13: one member's accented address silenced the coalition.

`subscriber add "élodie@exemple.fr"` was accepted, and the next `run-once` died with a
UnicodeEncodeError in mail.py, leaving every delivery of the pass pending, to crash again at
every pass; on the members' page, signing up as zoé@exemple.fr answered 500.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from starlette.testclient import TestClient

from scheduler import config
from scheduler.store import db
from scheduler.web.app import create_app
from tests.conftest import Coalition, SmtpSink, free_port, use_smtp

DUE = "2018-11-06T15:00:30Z"  # the announcement of the call of 13 November 2018
ELODIE = "élodie@exemple.fr"
OTHERS = ["ada@example.org", "bea@example.org", "carl@example.org", "dina@example.org"]
MANY = 150  # members beside those of the script, for a fan-out over several connections


@pytest.fixture
def members(organizer: Callable[[str], Coalition]) -> Coalition:
    return organizer("issue_13")


class WireSink(SmtpSink):
    """Also keeps each message as it came over the wire, with its MAIL FROM options."""

    def __init__(self) -> None:
        super().__init__()
        self.wire: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.wire.append((list(envelope.mail_options), bytes(envelope.content)))
        return await super().handle_DATA(server, session, envelope)

    def to(self, address: str) -> tuple[list[str], bytes]:
        (found,) = [(options, data) for options, data in self.wire
                    if address.encode() in data.partition(b"\r\n\r\n")[0]]
        return found


@contextmanager
def mail_server(smtputf8: bool) -> Iterator[tuple[WireSink, int]]:
    sink, port = WireSink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def rows(coalition: Coalition) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["channel"], d["recipient"]): d for d in coalition.deliveries()}


def add_many(coalition: Coalition, tmp_path: Path) -> list[str]:
    """MANY more members, half of them French readers, from a CSV file."""
    addresses = [f"member{n:03}@example.org" for n in range(MANY)]
    table = tmp_path / "many.csv"
    table.write_text("".join(f"{a},,{'fr' if n % 2 else 'en'},Europe/Brussels\n"
                             for n, a in enumerate(addresses)))
    assert coalition("subscriber", "import", str(table)).exit_code == 0
    return addresses


def test_issue_13_accented_address_goes_to_the_maildir_with_the_five_others(
        members: Coalition) -> None:
    ran = members("run-once", "--now", DUE)
    assert ran.exit_code == 0, ran.stderr
    assert "sent: 6 sent" in ran.stdout
    assert {d["status"] for d in rows(members).values()} == {"sent"}
    inbox = members.inbox()
    assert sorted(str(m["To"]) for m in inbox) == [
        "Ada <ada@example.org>", "Bea <bea@example.org>", "Dina Haile <dina@example.org>",
        "carl@example.org", "Élodie <élodie@exemple.fr>"]
    (elodie,) = [m for m in inbox if ELODIE in str(m["To"])]
    assert str(elodie["Subject"]).startswith("Justice For All coalition call : mardi")


def test_issue_13_accented_address_fails_alone_where_the_server_lacks_smtputf8(
        members: Coalition, tmp_path: Path) -> None:
    """Among many: the others each get their message once, then and in the passes after."""
    many = add_many(members, tmp_path)
    with mail_server(smtputf8=False) as (sink, port):
        use_smtp(members.config, port)
        ran = members("run-once", "--now", DUE)
        assert ran.exit_code == 1  # a delivery failed for good
        again = members("run-once", "--now", "2018-11-06T15:30:00Z")
        assert again.exit_code == 0 and "none due" in again.stdout
    found = rows(members)
    assert found[("email", ELODIE)]["status"] == "failed"
    assert found[("email", ELODIE)]["last_error"] == (
        f"the server 127.0.0.1 does not offer SMTPUTF8, which the address {ELODIE} needs")
    assert Counter(sink.recipients()) == Counter(OTHERS + many)
    assert {key: row["status"] for key, row in found.items() if key != ("email", ELODIE)} == \
        dict.fromkeys([("forum", "topic"), *(("email", a) for a in OTHERS + many)], "sent")


def test_issue_13_accented_address_goes_with_smtputf8_where_the_server_offers_it(
        members: Coalition, tmp_path: Path) -> None:
    many = add_many(members, tmp_path)
    with mail_server(smtputf8=True) as (sink, port):
        use_smtp(members.config, port)
        ran = members("run-once", "--now", DUE)
    assert ran.exit_code == 0, ran.stderr
    assert Counter(sink.recipients()) == Counter([*OTHERS, *many, ELODIE])
    options, data = sink.to(ELODIE)  # RFC 6531 and 6532; the name still in RFC 2047
    assert [o for o, _ in sink.wire if "SMTPUTF8" in o] == [options]  # that message alone
    assert f"\r\nTo: =?utf-8?q?=C3=89lodie?= <{ELODIE}>\r\n".encode() in data
    assert {row["status"] for row in rows(members).values()} == {"sent"}


# --- the members' page

SECRET = "s" * 40


@contextmanager
def page(coalition: Coalition, smtp_port: int | None = None) -> Iterator[TestClient]:
    path = coalition.config
    if smtp_port is not None:
        use_smtp(path, smtp_port)
    settings = config.load(path)
    engine = db.open_database(settings.database_url())
    try:
        with TestClient(create_app(settings, engine, secret=SECRET),
                        headers={"Accept-Language": "fr"}) as client:
            yield client
    finally:
        engine.dispose()


def sign_up(client: TestClient, email: str) -> tuple[int, str]:
    form = re.search(r'name="form_token" value="([^"]+)"', client.get("/subscribe").text)
    assert form
    response = client.post("/subscribe", data={
        "form_token": form.group(1), "email": email, "name": "Zoé", "language": "fr",
        "zone": "Europe/Brussels", "all": "yes"})
    return response.status_code, response.text


def test_issue_13_signing_up_with_an_accented_address_is_not_a_500(members: Coalition) -> None:
    with page(members) as client:
        status, text = sign_up(client, "zoé@exemple.fr")
    assert status == 200 and "Consultez votre boîte de réception" in text
    inbox = members.inbox()
    (confirmation,) = inbox
    assert str(confirmation["To"]) == "Zoé <zoé@exemple.fr>"


def test_issue_13_an_address_the_mail_server_cannot_take_gets_the_form_again(
        members: Coalition) -> None:
    with mail_server(smtputf8=False) as (sink, port), page(members, port) as client:
        status, text = sign_up(client, "zoé@exemple.fr")
        accepted, _ = sign_up(client, "zoe@example.org")
    assert status == 400
    assert "Nous ne pouvons pas envoyer d’e-mail à cette adresse" in text
    assert re.search(r'<input[^>]*name="email"[^>]*aria-invalid="true"', text) or \
        re.search(r'<input[^>]*aria-invalid="true"[^>]*name="email"', text)
    assert 'value="zoé@exemple.fr"' in text  # what they typed is kept
    assert accepted == 200 and sink.recipients() == ["zoe@example.org"]


def test_issue_13_a_confirmation_goes_with_smtputf8_where_offered(members: Coalition) -> None:
    with mail_server(smtputf8=True) as (sink, port), page(members, port) as client:
        status, _ = sign_up(client, "zoé@exemple.fr")
    assert status == 200 and sink.recipients() == ["zoé@exemple.fr"]
    options, data = sink.to("zoé@exemple.fr")
    assert "SMTPUTF8" in options and "\r\nTo: Zoé <zoé@exemple.fr>\r\n".encode() in data
