"""Posting to a Discourse forum through its API (httpx).

A reminder is a reply in the call's topic (`POST /posts.json` with `topic_id` and `raw`), or,
for a call without a topic, a new topic in the configured category with an `external_id`
derived from the delivery. Every post's raw text ends with a hidden marker of its delivery
key. Before a retry, the post an earlier attempt may have made (its answer lost: a timeout, a
502 after the post was made) is looked for, so it is not made twice: a new topic by its
external id (`GET /t/external_id/{id}.json`, which Discourse answers with a 301 to the topic),
a reply among the topic's latest posts, fetched with their raw text in one request
(`GET /t/{id}/posts.json?post_ids[]=...&include_raw=true`): two requests in all, well inside
Discourse's default limit of 60 a minute per key. A new topic refused because its external id
is taken was made by an earlier attempt, and is found the same way.

Answers: 429 is temporary and its Retry-After is honoured; other 5xx, network errors and answers
that are not Discourse's JSON (a proxy's error page) are temporary; 4xx are permanent, with
Discourse's own error text; `{"action": "enqueued"}` means the post waits for a moderator,
which counts as delivered. Requests say who sends them (User-Agent: coalition-calls/<version>).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx

from scheduler import __version__
from scheduler.channels import FORUM, Health, OnResult, Post, Result, Results, marker

if TYPE_CHECKING:
    from scheduler.config import Settings

log = logging.getLogger(__name__)
RECENT = 20  # how many of the topic's latest posts to search for a marker
USER_AGENT = f"coalition-calls/{__version__}"


def _posted(key: str, *, topic: int | None, post: int | None) -> Result:
    """A post made (or found made): the delivery's record keeps "post <id>", or "queued" when
    Discourse holds it for a moderator (or made it without saying which post it is)."""
    return Result(key=key, topic=topic, receipt=f"post {post}" if post else "queued")


class _Unsure(Exception):
    def __init__(self, result: Result) -> None:
        super().__init__(result.error)
        self.result = result


def external_id(key: str) -> str:
    return "coalition-" + hashlib.sha256(key.encode()).hexdigest()[:40]


class Discourse:
    channel = FORUM

    def __init__(self, url: str, *, api_key: str, api_username: str, category: int,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None,
                 key_env: str = "") -> None:
        """`api_key` empty: every post waits (temporary failure) until `key_env` is set."""
        self.url, self.category, self.api_username = url, category, api_username
        self.missing = f"{key_env or 'the API key variable'} is not set" if not api_key else None
        self.client = httpx.Client(
            base_url=url.rstrip("/"), timeout=timeout, transport=transport,
            headers={"Api-Key": api_key, "Api-Username": api_username,
                     "Accept": "application/json", "User-Agent": USER_AGENT})

    @classmethod
    def from_settings(cls, settings: Settings) -> Discourse:
        forum = settings.forum
        return cls(forum.url, api_key=forum.api_key(), api_username=forum.api_username,
                   category=forum.category, key_env=forum.api_key_env)

    def close(self) -> None:
        self.client.close()

    def send(self, items: Sequence[Post], on_result: OnResult | None = None) -> list[Result]:
        results = Results(on_result)
        for post in items:
            results.append(self.post(key=post.key, raw=post.text, topic_id=post.topic,
                                     title=post.title, retry=post.retry))
        return list(results)

    def post(self, *, key: str, raw: str, topic_id: int | None, title: str,
             retry: bool) -> Result:
        """Post `raw` once: a reply in `topic_id`, or a new topic titled `title`."""
        if self.missing is not None:
            return Result(key=key, error=f"{self.missing}: no Discourse API key",
                          unreachable=True)  # every post waits until it is set
        body = f"{raw.rstrip()}\n\n{marker(key)}\n"
        try:
            if retry:
                found = self._find(key, topic_id)
                if found is not None:
                    log.info("forum post for %s was already made (%s)", key, found.receipt)
                    return found
            payload: dict[str, Any] = {"raw": body}
            if topic_id is not None:
                payload["topic_id"] = topic_id
            else:
                payload |= {"title": title, "category": self.category,
                            "external_id": external_id(key)}
            response = self.client.post("/posts.json", json=payload)
            if topic_id is None and response.status_code == 422 and "external" in _errors(
                    response).lower():  # made by an attempt whose answer was lost
                found = self._find(key, None)
                if found is not None:
                    log.info("forum topic for %s was already made (%s)", key, found.receipt)
                    return found
            return self._answer(key, response)
        except _Unsure as e:  # posting now might post twice: try again later
            return e.result
        except httpx.HTTPError as e:  # not reached, timed out, cut
            return Result(key=key, error=f"{type(e).__name__}: {e}", unreachable=True)
        except ValueError as e:  # an answer that is not the JSON Discourse sends: a proxy's page
            return Result(key=key, error=f"the forum's answer is not Discourse's JSON: {e}",
                          unreachable=True)  # a proxy's page: the forum is not serving

    def _answer(self, key: str, response: httpx.Response) -> Result:
        if response.status_code == 200:
            data = response.json()
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
            if data.get("action") == "enqueued":  # held for review: a moderator publishes it
                return _posted(key, topic=None, post=None)
            return _posted(key, topic=data.get("topic_id"), post=data.get("id"))
        reason = _errors(response)
        if response.status_code == 429:
            return Result(key=key, error=f"429 {reason}", retry_after=_retry_after(response))
        permanent = 400 <= response.status_code < 500
        return Result(key=key, error=f"{response.status_code} {reason}", permanent=permanent,
                      unreachable=response.status_code in (502, 503, 504))  # not serving

    def _find(self, key: str, topic_id: int | None) -> Result | None:
        """The post this delivery made on an earlier attempt, or None when there is none: two
        requests at most. Any answer but "here it is" or "not found" (a rate limit, a server
        error) raises `_Unsure`: posting then could post twice."""
        if topic_id is None:  # a new topic: its first post is ours
            response = self._looked(key, self._followed(key, self.client.get(
                f"/t/external_id/{external_id(key)}.json")))
            if response is None:
                return None
            topic = response.json()
            first = topic.get("post_stream", {}).get("posts", [])[:1]
            return _posted(key, topic=topic.get("id"), post=first[0].get("id") if first else None)
        response = self._looked(key, self.client.get(f"/t/{topic_id}.json"))
        latest = response.json().get("post_stream", {}).get("stream", [])[-RECENT:] \
            if response is not None else []
        if not latest:
            return None
        response = self._looked(key, self.client.get(
            f"/t/{topic_id}/posts.json", params={"post_ids[]": latest, "include_raw": "true"}))
        for post in response.json().get("post_stream", {}).get("posts", []) if response else []:
            if marker(key) in str(post.get("raw", "")):
                return _posted(key, topic=topic_id, post=post.get("id"))
        return None

    def _followed(self, key: str, response: httpx.Response) -> httpx.Response:
        """Discourse answers an external id with a 301 to the topic: followed on the forum's
        own origin only (httpx would carry the Api-Key header to any host it is sent to)."""
        target = response.next_request if response.is_redirect else None
        if target is None:
            return response
        here = self.client.base_url
        if (target.url.scheme, target.url.host, target.url.port) != (
                here.scheme, here.host, here.port):
            raise _Unsure(Result(key=key, error=f"the forum sent the look-up to another site "
                                 f"({target.url.host}); not followed with the API key"))
        return self.client.send(target)

    def _looked(self, key: str, response: httpx.Response) -> httpx.Response | None:
        """The answer to a look for an earlier post: itself, None for "not found", or
        `_Unsure` with the failure to record (for good where posting would be refused too)."""
        if response.status_code == 200:
            return response
        if response.status_code == 404:
            return None
        answer = self._answer(key, response)
        if answer.permanent:  # a wrong key, say: posting would be refused the same way
            raise _Unsure(answer)
        raise _Unsure(Result(key=key, error=f"cannot tell whether an earlier attempt posted: "
                             f"{answer.error}", retry_after=answer.retry_after,
                             unreachable=answer.unreachable))

    def check(self) -> Health:
        """Are the key and user accepted? Else what Discourse said."""
        if self.missing is not None:
            return Health(ok=False, detail=self.missing)
        try:
            response = self.client.get(f"/u/{self.api_username}.json")
        except httpx.HTTPError as e:
            return Health(ok=False, detail=f"cannot reach {self.client.base_url}: {e}")
        if response.status_code == 200:
            return Health(ok=True, detail=f"{self.url} accepts the key of {self.api_username}")
        return Health(ok=False, detail=f"{response.status_code} {_errors(response)}")


def _errors(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    errors = data.get("errors") if isinstance(data, dict) else None
    return "; ".join(map(str, errors)) if errors else str(data.get("error_type", "error"))


def _retry_after(response: httpx.Response) -> timedelta | None:
    header = response.headers.get("Retry-After", "")
    if header.isdigit():
        return timedelta(seconds=int(header))
    try:
        wait = response.json().get("extras", {}).get("wait_seconds")
    except ValueError:
        return None
    return timedelta(seconds=float(wait)) if wait else None
