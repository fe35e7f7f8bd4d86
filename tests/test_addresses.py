"""Addresses are checked where they enter (email-validator, no DNS): the CLI, a CSV import and
`invite --to`. A domain beyond ASCII is stored and sent in its IDNA form; letters beyond ASCII
before the @ are accepted, in Unicode NFC."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DATA, Coalition, read_maildir
from tests.test_cli_calls import ADD, SLUG


def stored(coalition: Coalition) -> list[str]:
    return [s["email"] for s in json.loads(coalition("subscriber", "list", "--json").stdout)]


@pytest.mark.parametrize(("typed", "kept"), [
    pytest.param("ada@exémple.fr", "ada@xn--exmple-cva.fr", id="idn-domain"),
    pytest.param("Ada <Ada@Example.ORG>", "ada@example.org", id="name-and-capitals"),
    pytest.param("Élodie@Exemple.fr", "élodie@exemple.fr", id="accented-local-part"),
    pytest.param("e\u0301lodie@exemple.fr", "élodie@exemple.fr", id="decomposed-accent-to-nfc"),
])
def test_an_address_is_stored_normalized(coalition: Coalition, typed: str, kept: str) -> None:
    ran = coalition("subscriber", "add", typed)
    assert ran.exit_code == 0 and ran.stdout.startswith(f"subscribed {kept} ")
    assert stored(coalition) == [kept]


def test_the_same_address_typed_otherwise_is_the_same_subscriber(coalition: Coalition) -> None:
    assert coalition("subscriber", "add", "ada@exémple.fr").exit_code == 0
    again = coalition("subscriber", "add", "ADA@xn--exmple-cva.fr")
    assert again.exit_code == 2 and "ada@xn--exmple-cva.fr is already subscribed" in again.stderr
    assert coalition("subscriber", "remove", "ada@exémple.fr").exit_code == 0


@pytest.mark.parametrize(("typed", "says"), [
    pytest.param("amina at example.org", "must have an @-sign", id="no-at"),
    pytest.param("amina@example", "should have a period", id="no-dot"),
    pytest.param("amina@localhost", "should have a period", id="localhost"),
    pytest.param("amina@example.invalid", "special-use or reserved name", id="reserved"),
    pytest.param("ami na@example.org", "invalid characters before the @-sign", id="space"),
    pytest.param("amina@exa_mple.org", "invalid characters", id="underscore-domain"),
    pytest.param("amina@example.org\r\nBcc: x@example.org", "invalid characters", id="header"),
])
def test_an_address_that_cannot_be_used_is_one_line_and_stores_nothing(
        coalition: Coalition, typed: str, says: str) -> None:
    ran = coalition("subscriber", "add", typed)
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1
    assert f"{typed!r} is not an email address: " in ran.stderr and says in ran.stderr
    assert stored(coalition) == []


def test_csv_with_a_bad_address_names_its_line_and_adds_nobody(coalition: Coalition) -> None:
    ran = coalition("subscriber", "import", str(DATA / "csv" / "members_bad_address.csv"))
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1
    assert "members_bad_address.csv line 4: 'gus at example.org' is not an email address" \
        in ran.stderr
    assert stored(coalition) == []


def test_invite_checks_every_address_before_sending_any(coalition: Coalition) -> None:
    assert coalition(*ADD).exit_code == 0
    ran = coalition("invite", SLUG, "--to", "ada@example.org", "--to", "bea at example.org")
    assert ran.exit_code == 2 and "'bea at example.org' is not an email address" in ran.stderr
    maildir = coalition.config.parent / "var" / "mail"
    assert read_maildir(maildir) == []


def test_invite_sends_to_idn_and_accented_addresses(coalition: Coalition) -> None:
    assert coalition(*ADD).exit_code == 0
    ran = coalition("invite", SLUG, "--to", "Ana <ana@exémple.fr>", "--to", "zoé@exemple.fr")
    assert ran.exit_code == 0, ran.stderr
    maildir = coalition.config.parent / "var" / "mail"
    assert sorted(str(m["To"]) for m in read_maildir(maildir)) == [
        "Ana <ana@xn--exmple-cva.fr>", "zoé@exemple.fr"]
