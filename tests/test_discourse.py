"""Reminders on a Discourse forum, through its API, against a faithful stand-in."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from scheduler.channels.discourse import Discourse
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


def test_lost_answer_to_a_new_topic_finds_the_topic_and_keeps_posting_there(
    members: Coalition, forum: tuple[Forum, str]
) -> None:
    """Issue 15: Discourse answers the external id with a 301 to the topic; the retry follows
    it, records the post and the topic, and the call's later posts reply there."""
    state, _ = forum
    assert members("call", "edit", SLUG, "--forum-topic", "0").exit_code == 0
    state.failures = [Failure(status=502, after_posting=True)]
    run(members, ANNOUNCE, status=75)
    run(members, "2019-03-05T15:30:00Z")
    (new_topic,) = [t for t in state.topics.values() if t["id"] != 77]
    row = forum_rows(members)["announcement"]
    assert (row["status"], row["message_id"]) == ("sent", f"post {new_topic['posts'][0]}")
    assert json.loads(members("call", "show", SLUG, "--json").stdout)["forum_topic"] == \
        new_topic["id"]
    assert state.requests.count(("POST", "/posts.json")) == 1
    run(members, "2019-03-12T13:31:00Z")
    assert len(state.posts_in(new_topic["id"])) == 2 and len(state.topics) == 2


def test_a_new_topic_refused_as_already_made_is_recorded_as_made(
    members: Coalition, forum: tuple[Forum, str]
) -> None:
    """A first attempt whose topic exists (its answer lost before the attempt was counted):
    Discourse says the external id is taken; the topic found is the delivery's."""
    state, url = forum
    assert members("call", "edit", SLUG, "--forum-topic", "0").exit_code == 0
    run(members, ANNOUNCE)
    (made,) = [t for t in state.topics.values() if t["id"] != 77]
    raw = state.posts[made["posts"][0]]["raw"]
    key = raw.rsplit("<!-- coalition-delivery ", 1)[1].split(" -->")[0]
    client = Discourse(url, api_key="secret-key", api_username="system", category=5)
    try:  # the same delivery, tried as if for the first time
        again = client.post(key=key, raw="A second try at the same post", topic_id=None,
                            title="Justice For All coalition call", retry=False)
    finally:
        client.close()
    assert again.ok and (again.topic, again.receipt) == (made["id"], f"post {made['posts'][0]}")
    assert len(state.topics) == 2


def test_a_retry_in_a_long_topic_looks_with_two_requests(
    members: Coalition, forum: tuple[Forum, str]
) -> None:
    """Issue 15: not one GET per post (21 against a limit of 60 a minute): the topic's ids,
    then its latest posts with their raw text, at once."""
    state, _ = forum
    for n in range(45):
        state._add_post(77, f"an earlier post on the forum, number {n}", "ada")
    state.failures = [Failure(status=502, after_posting=True)]
    run(members, ANNOUNCE, status=75)
    state.requests.clear()
    run(members, "2019-03-05T15:30:00Z")
    assert state.requests == [("GET", "/t/77.json"), ("GET", "/t/77/posts.json")]
    assert forum_rows(members)["announcement"]["status"] == "sent"
    assert len(state.posts_in(77)) == 46


def test_requests_say_who_sends_them(members: Coalition, forum: tuple[Forum, str]) -> None:
    state, _ = forum
    run(members, ANNOUNCE)
    (agent,) = state.agents
    assert agent.startswith("coalition-calls/")


def test_a_retry_that_cannot_look_waits_rather_than_posting_twice(
    members: Coalition, forum: tuple[Forum, str]
) -> None:
    """Rate-limited while looking for the earlier attempt's post: not knowing, it does not
    post; it waits as long as Discourse asks, then looks again."""
    state, _ = forum
    state.failures = [Failure(status=502, after_posting=True)]
    run(members, ANNOUNCE, status=75)
    state.lookups_limited = 1
    run(members, "2019-03-05T15:30:00Z", status=75)
    row = forum_rows(members)["announcement"]
    assert row["status"] == "pending" and str(row["last_error"]).startswith(
        "cannot tell whether an earlier attempt posted: 429")
    run(members, "2019-03-05T16:30:00Z")
    assert len(state.posts_in(77)) == 1 and forum_rows(members)["announcement"]["status"] == "sent"


def test_a_redirect_to_another_site_is_not_followed_with_the_key() -> None:
    """The look-up for a lost new topic follows Discourse's 301 on the forum's own origin
    only: the Api-Key header never goes to another host."""
    import httpx

    seen: list[tuple[str, str | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("Api-Key")))
        if request.url.path.startswith("/t/external_id/"):
            return httpx.Response(301, headers={"Location": "https://elsewhere.example/t/9.json"})
        return httpx.Response(200, json={"id": 9, "post_stream": {"posts": [{"id": 90}]}})

    client = Discourse("https://forum.example.org", api_key="secret-key", api_username="system",
                       category=5, transport=httpx.MockTransport(answer))
    try:
        result = client.post(key="<k@example.org>", raw="A post long enough to post",
                             topic_id=None, title="Justice For All coalition call", retry=True)
    finally:
        client.close()
    assert not result.ok and "another site" in str(result.error)
    assert seen == [("forum.example.org", "secret-key")]
