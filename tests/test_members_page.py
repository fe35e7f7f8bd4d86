"""The members' page: upcoming calls in the reader's zone and language, calendar links, one
occurrence as .ics, and the ways a request can be wrong."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from icalendar import Calendar
from starlette.testclient import TestClient

from scheduler import config
from scheduler.delivery.catalogs import Catalogs
from scheduler.store import db
from scheduler.web import members
from scheduler.web.app import SECURITY_HEADERS, create_app
from tests.conftest import ROOT, Coalition

SECRET = "s" * 40


@pytest.fixture
def coalition_site(organizer: Callable[[str], Coalition]) -> Iterator[tuple[Coalition, TestClient]]:
    coalition = organizer("members")
    settings = config.load(coalition.config)
    engine = db.open_database(settings.database_url())
    with TestClient(create_app(settings, engine, secret=SECRET)) as client:
        yield coalition, client
    engine.dispose()


@pytest.fixture
def client(coalition_site: tuple[Coalition, TestClient]) -> TestClient:
    return coalition_site[1]


class Occurrences(HTMLParser):
    """The page as a reader sees it: per occurrence, its status and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        status = dict(attrs).get("data-status")
        if tag == "li" and status:
            self.found.append((status, ""))
            self._depth = 1
        elif tag == "li" and self._depth:
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "li" and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth and self.found:
            status, text = self.found[-1]
            self.found[-1] = (status, " ".join((text + " " + data).split()))


def occurrences(html: str) -> list[tuple[str, str]]:
    parser = Occurrences()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize(("zone", "first", "anchor"), [
    # 15:00 UTC on Tuesday 12 November 2030: New York has left summer time (UTC-05:00)
    ("Asia/Jakarta", "Tuesday, November 12, 2030, 10:00 PM UTC+07:00", "(10:00 AM in New York)"),
    ("America/Los_Angeles", "Tuesday, November 12, 2030, 7:00 AM UTC\u221208:00",
     "(10:00 AM in New York)"),
    ("Africa/Cairo", "Tuesday, November 12, 2030, 5:00 PM UTC+02:00", "(10:00 AM in New York)"),
    ("America/New_York", "Tuesday, November 12, 2030, 10:00 AM UTC\u221205:00", ""),
])
def test_times_are_in_the_readers_zone_with_the_anchor_beside(
        client: TestClient, zone: str, first: str, anchor: str) -> None:
    page = client.get("/", params={"tz": zone})
    assert page.status_code == 200
    status, text = occurrences(page.text)[0]
    assert status == "confirmed" and text.startswith(first)
    assert anchor in text
    assert occurrences(client.get("/").text)[0] == (status, text)  # the zone is kept (cookie)


def test_moved_and_cancelled_occurrences_are_marked(client: TestClient) -> None:
    found = occurrences(client.get("/", params={"tz": "Asia/Jakarta"}).text)
    justice = [f for f in found if "New York" in f[1]]
    assert [status for status, _ in justice] == ["confirmed", "moved", "cancelled", "confirmed"]
    moved, cancelled = justice[1][1], justice[2][1]
    assert moved.startswith("Moved Wednesday, December 11, 2030, 11:00 PM")
    assert "instead of Tuesday, December 10, 2030, 10:00 PM" in moved
    assert cancelled.startswith("Cancelled Tuesday, January 14, 2031")
    assert "Add to calendar" not in cancelled and "Add to calendar" in moved


def test_calls_are_listed_soonest_first_with_their_calendar_links(client: TestClient) -> None:
    page = client.get("/").text
    assert page.index("Justice For All") < page.index("Media working group")
    base = "127.0.0.1:8080/calendars/justice.ics"
    assert f'href="webcal://{base}"' in page and f'value="http://{base}"' in page
    assert ("https://calendar.google.com/calendar/render?cid=webcal%3A%2F%2F127.0.0.1%3A8080"
            "%2Fcalendars%2Fjustice.ics") in page
    assert 'href="https://example.org/register"' in page


def test_language_follows_the_browser_then_the_readers_choice(client: TestClient) -> None:
    french = client.get("/", params={"tz": "Africa/Kinshasa"},
                        headers={"Accept-Language": "fr-CD,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr"' in french.text
    assert occurrences(french.text)[0] == (
        "confirmed", "mardi 12 novembre 2030, 16:00 UTC+01:00 (10:00 à New York) "
                     "Ajouter à l’agenda")
    assert "S’abonner dans votre agenda" in french.text
    english = client.get("/", params={"lang": "en"}, headers={"Accept-Language": "fr"})
    assert '<html lang="en"' in english.text
    again = client.get("/", headers={"Accept-Language": "fr"})  # the cookie wins from now on
    assert '<html lang="en"' in again.text


@pytest.mark.parametrize(("accept", "expected"), [
    ("fr-FR,fr;q=0.9,en-US;q=0.8", "fr"), ("en-GB,en;q=0.9", "en"), ("de-DE,fr;q=0.5", "fr"),
    ("de, en;q=0.1, fr;q=0.2", "fr"), ("fr;q=0, en", "en"), ("", "en"), ("*", "en"),
    ("fr;q=abc, en", "en"),
])
def test_accept_language_is_read_with_its_weights(accept: str, expected: str) -> None:
    assert members.language(accept, None, ("en", "fr")) == expected


def test_the_zone_picker_groups_zones_by_country() -> None:
    groups = dict(members.zone_groups("fr"))
    assert ("Europe/Paris", "Paris") in groups["France"]
    assert {z for z, _ in groups["Congo-Kinshasa"]} == {
        "Africa/Kinshasa", "Africa/Lubumbashi"}
    assert ("Asia/Jakarta", "Jakarta") in groups["Indonésie"]
    assert next(iter(groups)) == "UTC"


@pytest.mark.parametrize(("query", "says"), [
    ({"tz": "Mars/Olympus_Mons"}, "unknown time zone &#39;Mars/Olympus_Mons&#39;"),
    ({"tz": "Europe/Pariss"}, "did you mean Europe/Paris"),
    ({"lang": "de"}, "unknown language &#39;de&#39; (this site speaks en, fr, es, ar, pt)"),
])
def test_an_unknown_zone_or_language_is_a_clear_400(
        client: TestClient, query: dict[str, str], says: str) -> None:
    page = client.get("/", params=query)
    assert page.status_code == 400 and says in page.text
    assert "Traceback" not in page.text


def test_a_bad_cookie_is_ignored(client: TestClient) -> None:
    client.cookies.set("tz", "Not/AZone")
    client.cookies.set("lang", "xx")
    page = client.get("/")
    assert page.status_code == 200 and "Not/AZone" not in page.text


def test_one_occurrence_is_its_own_calendar(client: TestClient) -> None:
    page = client.get("/")
    link = next(line for line in page.text.splitlines() if "20301210T150000Z.ics" in line)
    assert 'href="/calls/justice/20301210T150000Z.ics"' in link
    response = client.get("/calls/justice/20301210T150000Z.ics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert 'filename="justice-20301210.ics"' in response.headers["content-disposition"]
    calendar = Calendar.from_ical(response.content)
    (event,) = calendar.walk("VEVENT")
    assert event.decoded("dtstart").isoformat() == "2030-12-11T11:00:00-05:00"  # where it moved
    assert str(event["dtstart"].params["TZID"]) == "America/New_York"
    assert "RRULE" not in event and "RECURRENCE-ID" not in event
    assert str(event["uid"]).startswith("20301210T150000Z-")
    assert len(calendar.walk("VTIMEZONE")) == 1


@pytest.mark.parametrize(("path", "status"), [
    ("/calls/justice/20301111T150000Z.ics", 404),  # no occurrence then
    ("/calls/nobody/20301112T150000Z.ics", 404),
    ("/calls/justice/tomorrow.ics", 400),
    ("/no/such/page", 404),
])
def test_wrong_occurrence_links_are_clear_4xx(client: TestClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status and "<h1>Something is not right</h1>" in response.text


@pytest.mark.parametrize("path", ["/", "/subscribe", "/calendars/all.ics", "/nowhere",
                                  "/static/page.css", "/?tz=Nowhere/Land"])
def test_every_answer_has_the_security_headers(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value
    assert "'unsafe-inline'" not in headers["content-security-policy"]


def test_a_failing_template_shows_a_page_not_a_traceback(
        organizer: Callable[[str], Coalition], tmp_path: Path) -> None:
    coalition = organizer("members")
    own = coalition.config.parent / "own"
    (own / "web").mkdir(parents=True)
    (own / "web" / "index.html").write_text("{{ calls[99].title }}\n")
    path = coalition.config
    path.write_text(path.read_text().replace('folder = ""', 'folder = "own"'))
    settings = config.load(path)
    client = TestClient(create_app(settings, db.open_database(settings.database_url()),
                                   secret=SECRET), raise_server_exceptions=False)
    page = client.get("/")
    assert page.status_code == 500
    assert "Something went wrong on our side" in page.text
    assert "Traceback" not in page.text and "calls[99]" not in page.text
    assert page.headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]


def test_every_shipped_language_has_every_word() -> None:
    """The pages' words are in the catalogs with the messages': none missing, none fuzzy."""
    shipped = Catalogs([ROOT / "templates"])
    assert shipped.languages() == ["ar", "en", "es", "fr", "pt"]
    for lang in shipped.languages():
        assert shipped.problems(lang) == [], lang


def test_check_finds_a_broken_page_before_a_member_does(coalition: Coalition) -> None:
    path = coalition.config
    (path.parent / "own" / "web").mkdir(parents=True)
    (path.parent / "own" / "web" / "notice.html").write_text(
        '{% extends "web/_layout.html" %}\n{% block main %}\n{{ t.no_such_words }}\n'
        '{% endblock %}\n')
    path.write_text(path.read_text().replace('folder = ""', 'folder = "own"'))
    checked = coalition("check")
    said = checked.stdout + checked.stderr
    assert checked.exit_code != 0
    assert "own/web/notice.html line 3 (en)" in said and "no_such_words" in said
    assert "(fr)" in said


@pytest.mark.parametrize(("old", "current"), [
    pytest.param("Asia/Katmandu", "Asia/Kathmandu", id="katmandu"),
    pytest.param("Asia/Calcutta", "Asia/Kolkata", id="calcutta"),
    pytest.param("Europe/Kiev", "Europe/Kyiv", id="kiev"),
    pytest.param("Asia/Saigon", "Asia/Ho_Chi_Minh", id="saigon"),
    pytest.param("America/Buenos_Aires", "America/Argentina/Buenos_Aires", id="buenos-aires"),
])
def test_issue_17_an_old_zone_name_is_shown_chosen_by_its_current_name(
        client: TestClient, old: str, current: str) -> None:
    """Chromium reports old names (Asia/Calcutta); the picker lists current ones only, so the
    server takes the old name as the current one: chosen in the picker, kept in the cookie."""
    page = client.get("/", params={"tz": old})
    assert page.status_code == 200
    assert f'<option value="{current}" selected>' in page.text
    assert f"({current})" in page.text and f"({old})" not in page.text
    assert (client.cookies.get("tz") or "").strip('"') == current


def test_issue_17_a_zone_the_browser_reports_and_the_server_does_not_know_keeps_the_default(
        client: TestClient) -> None:
    """The page's script sends the browser's zone as it is (tz_from=browser): one the server
    does not know is no error page on a first visit, only the default zone, not chosen."""
    page = client.get("/", params={"tz": "Mars/Olympus_Mons", "tz_from": "browser"})
    assert page.status_code == 200
    assert 'data-zone-chosen="no"' in page.text and "(America/New_York)" in page.text
    assert client.cookies.get("tz") is None
