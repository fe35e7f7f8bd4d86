"""The unsubscribe link of every email: one click (RFC 8058), or one button."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient

from scheduler import config
from scheduler.store import db
from scheduler.store.models import Subscriber
from scheduler.web.app import create_app
from tests.conftest import Coalition


@pytest.fixture
def site(organizer: Callable[[str], Coalition]) -> Iterator[tuple[Coalition, TestClient, str]]:
    coalition = organizer("reminders")
    assert coalition("run-once", "--now", "2019-03-05T14:00:00Z").exit_code == 0  # plans
    settings = config.load(coalition.config)
    engine = db.open_database(settings.database_url())
    with Session(engine) as session:
        token = session.exec(select(Subscriber.token).where(
            Subscriber.email == "ada@example.org")).one()
    with TestClient(create_app(settings, engine)) as client:
        yield coalition, client, token
    engine.dispose()


def statuses(coalition: Coalition) -> dict[str, str]:
    found = json.loads(coalition("subscriber", "list", "--json").stdout)
    return {s["email"]: s["status"] for s in found}


def test_one_click_post_unsubscribes_and_cancels_what_was_pending(
    site: tuple[Coalition, TestClient, str],
) -> None:
    coalition, client, token = site
    response = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "ada@example.org will get no more" in response.text
    assert statuses(coalition) == {"ada@example.org": "unsubscribed",
                                   "bea@example.org": "confirmed"}
    pending = coalition.deliveries("--status", "pending")
    assert "ada@example.org" not in {d["recipient"] for d in pending}
    assert client.post(f"/unsubscribe/{token}").status_code == 200  # twice is harmless


def test_the_link_opens_a_page_with_one_button(site: tuple[Coalition, TestClient, str]) -> None:
    coalition, client, token = site
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert page.text.count("<button") == 1
    assert statuses(coalition)["ada@example.org"] == "confirmed"  # looking is not leaving


@pytest.mark.parametrize("token", ["not-a-real-token-at-all", "x", "../../etc/passwd"])
def test_a_forged_link_is_refused(site: tuple[Coalition, TestClient, str], token: str) -> None:
    coalition, client, _ = site
    assert client.post(f"/unsubscribe/{token}").status_code == 404
    assert set(statuses(coalition).values()) == {"confirmed"}


def test_issue_12_a_post_from_another_sites_page_does_not_unsubscribe(
        site: tuple[Coalition, TestClient, str]) -> None:
    """The link's secret is not enough from another site's page; a mail provider's one-click
    POST, which carries no Origin, still works (test above)."""
    coalition, client, token = site
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        assert client.post(f"/unsubscribe/{token}", headers=headers).status_code == 403
    assert statuses(coalition)["ada@example.org"] == "confirmed"


def test_head_of_the_link_does_not_unsubscribe(site: tuple[Coalition, TestClient, str]) -> None:
    """Link checkers and mail scanners send HEAD: it was taken for the button's POST."""
    coalition, client, token = site
    assert client.head(f"/unsubscribe/{token}").status_code == 200
    assert statuses(coalition)["ada@example.org"] == "confirmed"
