"""Serving the feeds over HTTP: validators, 304s, HEAD, 404, and the real daemon process."""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import formatdate

import httpx
import pytest
from starlette.testclient import TestClient

from scheduler import config
from scheduler.web.app import create_app
from tests.conftest import Coalition
from tests.daemon_process import start, stop
from tests.test_cli_calls import ADD

FEED = "/calendars/justice-for-all-coalition-call.ics"


class Ticks:
    """The feed cache's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def client(coalition: Coalition, ticks: Ticks) -> Iterator[TestClient]:
    assert coalition(*ADD).exit_code == 0
    settings = config.load(coalition.config)
    with TestClient(create_app(settings, monotonic=ticks)) as test_client:
        yield test_client


def test_feed_is_served_with_validators(client: TestClient) -> None:
    response = client.get(FEED)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.headers["etag"].startswith('"') and "W/" not in response.headers["etag"]
    assert response.headers["last-modified"].endswith(" GMT")
    assert "max-age" in response.headers["cache-control"]
    assert response.text.startswith("BEGIN:VCALENDAR")


def test_all_calls_feed_is_served(client: TestClient) -> None:
    assert "Justice For All" in client.get("/calendars/all.ics").text


def test_head_gives_the_headers_without_the_body(client: TestClient) -> None:
    head, get = client.head(FEED), client.get(FEED)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == get.headers["etag"]


def test_matching_etag_gives_304_and_a_stale_one_200(client: TestClient) -> None:
    full = client.get(FEED)
    etag = full.headers["etag"]
    not_modified = client.get(FEED, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    for header in ("etag", "last-modified", "cache-control"):  # what a cache updates
        assert not_modified.headers[header] == full.headers[header]
    assert client.get(FEED, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_if_modified_since_gives_304_until_the_file_changes(
    client: TestClient, coalition: Coalition
) -> None:
    last_modified = client.get(FEED).headers["last-modified"]
    assert client.get(FEED, headers={"If-Modified-Since": last_modified}).status_code == 304
    long_ago = formatdate(0, usegmt=True)
    assert client.get(FEED, headers={"If-Modified-Since": long_ago}).status_code == 200


def test_changed_call_changes_the_etag_within_a_second(
    client: TestClient, coalition: Coalition, ticks: Ticks
) -> None:
    before = client.get(FEED).headers["etag"]
    assert coalition("call", "cancel", "justice-for-all-coalition-call", "--on",
                     "2019-01-08").exit_code == 0
    ticks.now += 0.5  # the file is looked at again at most once a second
    assert client.get(FEED, headers={"If-None-Match": before}).status_code == 304
    ticks.now += 0.5
    response = client.get(FEED, headers={"If-None-Match": before})
    assert response.status_code == 200 and response.headers["etag"] != before
    assert "EXDATE" in response.text


def test_removed_feed_is_404_within_a_second(
    client: TestClient, coalition: Coalition, ticks: Ticks
) -> None:
    assert client.get(FEED).status_code == 200
    assert coalition("call", "delete", "justice-for-all-coalition-call", "--yes").exit_code == 0
    ticks.now += 1
    assert client.get(FEED).status_code == 404


@pytest.mark.parametrize("path", ["/calendars/nope.ics", "/calendars/..%2Fconfig.toml",
                                  "/calendars/ALL.ics", "/calendars/all.ics.bak"])
def test_unknown_or_malformed_feed_is_404(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_feed_that_cannot_be_read_is_503_in_one_line(
    client: TestClient, coalition: Coalition, caplog: pytest.LogCaptureFixture
) -> None:
    settings = config.load(coalition.config)
    (settings.calendars / "broken.ics").mkdir()  # stat works, reading does not
    response = client.get("/calendars/broken.ics")
    assert response.status_code == 503
    assert response.text == "cannot read broken.ics\n"
    assert response.headers["x-content-type-options"] == "nosniff"  # as on every answer
    assert "cannot read the feed broken.ics" in caplog.text
    assert client.get(FEED).status_code == 200


def test_daemon_serves_feeds_until_sigterm(coalition: Coalition) -> None:
    """The real command, as `make run` starts it, on a port the system picks."""
    assert coalition(*ADD).exit_code == 0
    process = start(coalition.config)
    try:
        ready = next(line for line in process.log if line.startswith("ready:"))
        url = ready.split()[3].rstrip("/")
        response = httpx.get(url + FEED)
        assert response.status_code == 200 and "BEGIN:VCALENDAR" in response.text
        assert httpx.get(url + FEED, headers={"If-None-Match": response.headers["etag"]}
                         ).status_code == 304
    finally:
        assert stop(process) == 0
