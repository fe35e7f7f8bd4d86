"""Reminders on a Discourse forum, through its API, against a faithful stand-in."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Coalition, free_port
from tests.discourse_standin import Failure, Forum, Running

SLUG = "justice-for-all-coalition-call"
ANNOUNCE, LATER = "2019-03-05T15:00:00Z", "2019-03-05T15:05:00Z"


@pytest.fixture
def forum() -> Iterator[tuple[Forum, str]]:
    state = Forum(api_key="secret-key")
    state.topic(77)
    running = Running(state, free_port())
    yield state, running.url
    running.stop()


@pytest.fixture
def members(organizer: Callable[[str], Coalition], forum: tuple[Forum, str],
            monkeypatch: pytest.MonkeyPatch) -> Coalition:
    coalition = organizer("reminders")
    _, url = forum
    config = coalition.config
    text = config.read_text().replace('transport = "files"', 'transport = "discourse"')
    config.write_text(text.replace('url = "https://forum.example.org"', f'url = "{url}"')
                      .replace("category = 0", "category = 5"))
    monkeypatch.setenv("COALITION_DISCOURSE_API_KEY", "secret-key")
    return coalition


def forum_rows(coalition: Coalition) -> dict[str, dict[str, object]]:
    return {d["rule"]: d for d in coalition.deliveries() if d["channel"] == "forum"}


def run(coalition: Coalition, moment: str, status: int = 0) -> None:
    """A pass, and its exit status: 1 when a delivery failed for good, 75 when one waits."""
    ran = coalition("run-once", "--now", moment)
    assert ran.exit_code == status, ran.stderr


def test_reminder_is_a_reply_in_the_calls_topic(members: Coalition,
                                                forum: tuple[Forum, str]) -> None:
    state, _ = forum
    run(members, ANNOUNCE)
    (post,) = state.posts_in(77)
    assert "10:00 AM New York // 3:00 PM Brussels" in post["raw"]
    assert "<!-- coalition-delivery <reminder." in post["raw"]
    assert post["username"] == "system"
    assert forum_rows(members)["announcement"]["status"] == "sent"


def test_call_without_topic_opens_one_and_keeps_posting_there(
    members: Coalition, forum: tuple[Forum, str]
) -> None:
    state, _ = forum
    assert members("call", "edit", SLUG, "--forum-topic", "0").exit_code == 0
    run(members, ANNOUNCE)
    (new_topic,) = [t for t in state.topics.values() if t["id"] != 77]
    assert new_topic["title"] == "Justice For All coalition call"
    assert new_topic["external_id"].startswith("coalition-")
    assert json.loads(members("call", "show", SLUG, "--json").stdout)["forum_topic"] == \
        new_topic["id"]
    run(members, "2019-03-12T13:31:00Z")
    assert len(state.posts_in(new_topic["id"])) == 2


def test_rate_limit_waits_as_long_as_discourse_asks(members: Coalition,
                                                    forum: tuple[Forum, str]) -> None:
    state, _ = forum
    state.failures = [Failure(status=429, retry_after=600)]
    run(members, ANNOUNCE, status=75)
    row = forum_rows(members)["announcement"]
    assert (row["status"], str(row["last_error"])[:3]) == ("pending", "429")
    run(members, LATER)  # five minutes on: still waiting
    assert state.posts_in(77) == []
    run(members, "2019-03-05T15:10:30Z")
    assert len(state.posts_in(77)) == 1 and forum_rows(members)["announcement"]["status"] == "sent"


def test_lost_answer_is_not_posted_twice(members: Coalition, forum: tuple[Forum, str]) -> None:
    state, _ = forum
    state.failures = [Failure(status=502, after_posting=True)]
    run(members, ANNOUNCE, status=75)
    assert forum_rows(members)["announcement"]["status"] == "pending"
    run(members, "2019-03-05T15:30:00Z")  # the retry finds its marker in the topic
    assert len(state.posts_in(77)) == 1
    assert forum_rows(members)["announcement"]["status"] == "sent"
    assert state.requests.count(("POST", "/posts.json")) == 1
    assert ("GET", "/t/77.json") in state.requests


def test_server_error_is_retried(members: Coalition, forum: tuple[Forum, str]) -> None:
    state, _ = forum
    state.failures = [Failure(status=500)]
    run(members, ANNOUNCE, status=75)
    run(members, "2019-03-05T15:30:00Z")
    assert len(state.posts_in(77)) == 1
    assert forum_rows(members)["announcement"]["attempts"] == 2


def test_refused_post_fails_for_good_with_discourses_words(members: Coalition,
                                                           forum: tuple[Forum, str]) -> None:
    state, _ = forum
    del state.topics[77]  # the topic was deleted on the forum
    run(members, ANNOUNCE, status=1)
    row = forum_rows(members)["announcement"]
    assert row["status"] == "failed"
    assert row["last_error"] == "404 The requested URL or resource could not be found."


def test_wrong_key_fails_and_missing_key_waits(members: Coalition, forum: tuple[Forum, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COALITION_DISCOURSE_API_KEY")
    run(members, ANNOUNCE, status=75)
    row = forum_rows(members)["announcement"]
    assert row["status"] == "pending" and "COALITION_DISCOURSE_API_KEY is not set" in str(
        row["last_error"])
    monkeypatch.setenv("COALITION_DISCOURSE_API_KEY", "wrong")
    run(members, "2019-03-05T15:30:00Z", status=1)
    row = forum_rows(members)["announcement"]
    assert row["status"] == "failed" and str(row["last_error"]).startswith("403")
