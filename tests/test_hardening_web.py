"""Hardening the web layer and what enters the service (issues 11 to 16): slow clients, forms
posted from other sites, made-up client addresses, control characters in text, tokens in log
lines; then HEAD, odd methods, trailing slashes, large bodies and error pages.

Nothing here sleeps: limits on time are checked where they are configured (uvicorn's settings,
deploy/nginx.conf), not by waiting for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import pytest
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from scheduler import config, daemon
from scheduler import log as log_setup
from scheduler.core import inputs
from scheduler.errors import ConfigError, InvalidValue
from scheduler.store import db
from scheduler.web import signup
from scheduler.web.app import MAX_BODY, SECURITY_HEADERS, create_app
from tests.conftest import ROOT, Coalition, read_maildir

SECRET = "s" * 40
SITE = ROOT / "deploy" / "nginx.conf"


class Answer(Protocol):
    """What the test client answers (its httpx is not always the one tests import)."""

    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


@dataclass
class Web:
    coalition: Coalition
    client: TestClient
    maildir: Path

    def form_token(self, path: str = "/subscribe") -> str:
        found = re.search(r'name="form_token" value="([^"]+)"', self.client.get(path).text)
        assert found
        return found.group(1)

    def sign_up(self, headers: dict[str, str] | None = None,
                **fields: str) -> Answer:
        data = {"form_token": self.form_token(), "email": "amina@example.org", "name": "Amina",
                "language": "en", "zone": "Africa/Kinshasa", "all": "yes", **fields}
        return self.client.post("/subscribe", data=data, headers=headers or {})

    def mails(self) -> list[EmailMessage]:
        return read_maildir(self.maildir)

    def subscribers(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(
            self.coalition("subscriber", "list", "--json").stdout)
        return found


def serve(coalition: Coalition) -> Iterator[Web]:
    settings = config.load(coalition.config)
    engine = db.open_database(settings.database_url())
    with TestClient(create_app(settings, engine, secret=SECRET)) as client:
        yield Web(coalition, client, settings.maildir)
    engine.dispose()


@pytest.fixture
def web(organizer: Callable[[str], Coalition]) -> Iterator[Web]:
    """The members' page of the example service (base_url http://127.0.0.1:8080)."""
    yield from serve(organizer("members"))


def assert_security_headers(response: Answer) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name


# --- issue 11: slow clients


def nginx_directives(text: str) -> dict[str, list[str]]:
    """`name value...;` lines of the site, by name (comments left out)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.endswith(";"):
            name, _, value = line[:-1].partition(" ")
            found.setdefault(name, []).append(value.strip())
    return found


def seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(s|m)?", value).groups()  # type: ignore[union-attr]
    return int(number) * (60 if unit == "m" else 1)


def test_issue_11_the_web_server_bounds_connections_headers_and_idle_time(
        tmp_path: Path) -> None:
    """uvicorn holds at most [web] max_connections connections, closes an idle keep-alive
    connection after a few seconds, and (h11) refuses headers larger than 16 KiB."""
    web = config.parse({"web": {"max_connections": 50}}, tmp_path / "config.toml").web
    server = daemon.web_server_config(echo_client, web, environ={})
    assert server.limit_concurrency == 50
    assert 0 < server.timeout_keep_alive <= 5
    assert server.h11_max_incomplete_event_size is not None
    assert server.h11_max_incomplete_event_size <= 16 * 1024
    assert config.parse({}, tmp_path / "config.toml").web.max_connections == 200


def test_issue_11_nginx_in_front_times_out_slow_headers_and_bodies() -> None:
    """uvicorn has no timeout for reading headers: the site in deploy/ must have one, since
    the daemon runs behind it (README, Deploy), and bound what one address may hold."""
    found = nginx_directives(SITE.read_text())
    assert seconds(found["client_header_timeout"][0]) <= 10
    assert seconds(found["client_body_timeout"][0]) <= 10
    assert found["client_max_body_size"] == [f"{MAX_BODY // 1024}k"]
    assert found["limit_conn_zone"] and found["limit_conn"]
    assert "client_header_timeout" in (ROOT / "README.md").read_text()


# --- issue 12: forms posted from other sites


@pytest.mark.parametrize("headers", [
    pytest.param({"Origin": "https://evil.example"}, id="foreign-origin"),
    pytest.param({"Origin": "http://127.0.0.1:8080.evil.example"}, id="lookalike-origin"),
    pytest.param({"Origin": "https://127.0.0.1:8080"}, id="other-scheme"),
    pytest.param({"Origin": "http://testserver"}, id="the-host-header-is-not-base-url"),
    pytest.param({"Sec-Fetch-Site": "cross-site"}, id="cross-site"),
    pytest.param({"Sec-Fetch-Site": "same-site", "Origin": "null"}, id="same-site-null"),
    pytest.param({"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"},
                 id="contradicting"),
])
def test_issue_12_a_form_posted_from_another_site_is_refused(
        web: Web, headers: dict[str, str]) -> None:
    """A valid cookie and CSRF token are not enough: the browser says where the form was."""
    response = web.sign_up(headers)
    assert response.status_code == 403 and "not sent from this site" in response.text
    assert_security_headers(response)
    assert web.mails() == []


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-origin-curl"),
    pytest.param({"Origin": "http://127.0.0.1:8080"}, id="base-url-origin"),
    pytest.param({"Sec-Fetch-Site": "same-origin", "Origin": "null"}, id="no-referrer-form"),
    pytest.param({"Sec-Fetch-Site": "same-origin"}, id="same-origin"),
    pytest.param({"Sec-Fetch-Site": "none"}, id="typed"),
])
def test_issue_12_our_own_pages_and_clients_without_origin_still_post(
        web: Web, headers: dict[str, str]) -> None:
    """Our pages send Referrer-Policy: no-referrer, so browsers post their forms with
    "Origin: null" and Sec-Fetch-Site: same-origin (Chromium does); curl sends neither (the
    token decides)."""
    response = web.sign_up(headers)
    assert response.status_code == 200, response.text
    assert len(web.mails()) == 1


@pytest.mark.parametrize(("base_url", "origin"), [
    ("https://Calls.Example.org:443", "https://calls.example.org"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("http://[::1]:8080", "http://[::1]:8080"),
])
def test_issue_12_the_allowed_origin_is_base_urls_as_browsers_write_it(
        base_url: str, origin: str) -> None:
    from scheduler.web.app import origin_of
    assert origin_of(base_url) == origin
    assert origin_of("null") is None


# --- issue 13: X-Forwarded-For


async def echo_client(scope: Scope, receive: Receive, send: Send) -> None:
    body = scope["client"][0].encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def client_seen(trusted: list[str], environ: dict[str, str]) -> str:
    """The client address the application is told, for a request from 127.0.0.1 whose
    X-Forwarded-For says 203.0.113.7, through uvicorn's app as the daemon configures it."""
    web = config.parse({"web": {"trusted_proxies": trusted}}, Path("/x/config.toml")).web
    server = daemon.web_server_config(echo_client, web, environ=environ)
    server.load()
    sent: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            sent.append(message["body"])

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
             "query_string": b"", "root_path": "", "server": ("127.0.0.1", 8080),
             "client": ("127.0.0.1", 50000),
             "headers": [(b"host", b"127.0.0.1"), (b"x-forwarded-for", b"203.0.113.7")]}
    asyncio.run(server.loaded_app(scope, receive, send))
    return sent[0].decode()


@pytest.mark.parametrize(("trusted", "environ", "seen"), [
    pytest.param([], {}, "127.0.0.1", id="none-trusted-by-default"),
    pytest.param([], {"FORWARDED_ALLOW_IPS": "127.0.0.1,::1"}, "203.0.113.7",
                 id="an-upgraded-unit-files-variable-stands-in-for-the-setting"),
    pytest.param([], {"FORWARDED_ALLOW_IPS": "*"}, "127.0.0.1", id="but-never-everyone"),
    pytest.param(["192.0.2.1"], {"FORWARDED_ALLOW_IPS": "127.0.0.1"}, "127.0.0.1",
                 id="the-setting-wins-over-the-variable"),
    pytest.param(["192.0.2.1"], {}, "127.0.0.1", id="another-proxy"),
    pytest.param(["127.0.0.1", "::1"], {}, "203.0.113.7", id="nginx-on-this-machine"),
    pytest.param(["127.0.0.0/8"], {}, "203.0.113.7", id="a-network"),
])
def test_issue_13_x_forwarded_for_is_believed_from_configured_proxies_only(
        trusted: list[str], environ: dict[str, str], seen: str) -> None:
    """A local client rotating X-Forwarded-For must not get a fresh sign-up limit each time."""
    assert client_seen(trusted, environ) == seen


@pytest.mark.parametrize("value", [["*"], ["localhost"], ["10.0.0.300"], "127.0.0.1"])
def test_issue_13_trusted_proxies_must_be_addresses(value: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[web\] trusted_proxies: "):
        config.parse({"web": {"trusted_proxies": value}}, tmp_path / "config.toml")


# --- issue 14: control characters


@pytest.mark.parametrize("text", [
    pytest.param("a\x00b", id="nul"), pytest.param("a\x1b[31mb", id="esc"),
    pytest.param("a\x07b", id="bel"), pytest.param("a\rb", id="cr"),
    pytest.param("a\x7fb", id="del"), pytest.param("a\x85b", id="c1-next-line"),
])
def test_issue_14_control_characters_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidValue, match=r"^--description contains the control character "
                       r"U\+00[0-9A-F]{2} \(character 2\)") as raised:
        inputs.plain_text(text, field="--description")
    assert "\n" not in str(raised.value)


def test_issue_14_tabs_line_breaks_and_letters_are_text_in_one_form() -> None:
    typed = unicodedata.normalize("NFD", "Amélie\tand Zoë\nagenda")
    assert inputs.plain_text(typed, field="x") == "Amélie\tand Zoë\nagenda"  # NFC


@pytest.mark.parametrize(("args", "says"), [
    pytest.param(("--title", "Weekly\x1b[31m\x07"), "error: title contains the control "
                 "character U+001B", id="title"),
    pytest.param(("--title", "Weekly", "--description", "agenda\x00"), "error: --description "
                 "contains the control character U+0000", id="description"),
    pytest.param(("--title", "Weekly", "--register-url", "https://example.org/\x07"),
                 "error: --register-url contains the control character U+0007",
                 id="register-url"),
])
def test_issue_14_a_call_with_control_characters_is_refused_in_one_line(
        coalition: Coalition, args: tuple[str, ...], says: str) -> None:
    ran = coalition("call", "add", *args, "--start", "2030-01-07 15:00", "--tz",
                    "Europe/Brussels")
    assert ran.exit_code == 2 and ran.stderr.startswith(says), ran.stderr
    assert ran.stderr.count("\n") == 1
    assert "no calls yet" in coalition("call", "list").stdout


def test_issue_14_a_name_with_a_control_character_is_refused(coalition: Coalition) -> None:
    ran = coalition("subscriber", "add", "ada@example.org", "--name", "Ada\x00")
    assert ran.exit_code == 2 and ran.stderr.startswith("error: name contains the control "
                                                        "character U+0000")
    assert coalition("subscriber", "list", "--json").stdout.strip() == "[]"


def test_issue_14_notes_with_a_control_character_are_refused(
        coalition: Coalition, tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("We agreed \x1b[2J on the agenda\n")
    ran = coalition("render", "any-call", "--on", "2030-01-08", "--template", "followup",
                    "--notes", str(notes))
    assert ran.exit_code == 2
    assert ran.stderr == (f"error: --notes {notes} contains the control character U+001B "
                          "(character 11); only printable text, tabs and line breaks are "
                          "accepted\n")


def import_with_nul(coalition: Coalition, tmp_path: Path) -> tuple[int, str]:
    # Written here: a NUL byte in a file under tests/data would make git call it binary.
    members = tmp_path / "members_nul.csv"
    members.write_text("email,name\nada@example.org,Ada\nbea@example.org,Be\x00a\n")
    ran = coalition("subscriber", "import", str(members))
    return ran.exit_code, ran.stderr


def test_issue_14_a_nul_in_a_csv_name_is_refused_on_sqlite(
        coalition: Coalition, tmp_path: Path) -> None:
    code, said = import_with_nul(coalition, tmp_path)
    assert code == 2 and said.count("\n") == 1
    assert "members_nul.csv line 3: name contains the control character U+0000" in said
    assert coalition("subscriber", "list", "--json").stdout.strip() == "[]"  # all or none


@pytest.mark.postgres
def test_issue_14_a_nul_in_a_csv_name_is_one_line_on_postgresql(
        coalition: Coalition, postgres_url: str, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """PostgreSQL refused the row itself, and the CLI printed the INSERT with the member's
    unsubscribe token; now the row never gets that far."""
    monkeypatch.setenv("COALITION_DATABASE_URL", postgres_url)
    code, said = import_with_nul(coalition, tmp_path)
    assert code == 2 and said.count("\n") == 1, said
    assert "line 3: name contains the control character U+0000" in said
    assert "INSERT" not in said and "token" not in said
    assert coalition("subscriber", "list", "--json").stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["Am\x1b[31mina", "Amina\r\nBcc: x@example.org"])
def test_issue_14_a_sign_up_with_a_control_character_is_a_400(web: Web, name: str) -> None:
    response = web.sign_up(name=name)
    assert response.status_code == 400
    assert "The name must be one line" in response.text
    assert re.search(r'<input[^>]*name="name"[^>]*aria-invalid="true"|'
                     r'<input[^>]*aria-invalid="true"[^>]*name="name"', response.text)
    assert web.mails() == []


@pytest.mark.postgres
def test_issue_14_a_sign_up_with_a_nul_on_postgresql_sends_nothing(
        organizer: Callable[[str], Coalition], postgres_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to send the confirmation email; confirming then answered 500."""
    monkeypatch.setenv("COALITION_DATABASE_URL", postgres_url)
    coalition = organizer("members")
    (coalition.folder / "var").mkdir()  # no SQLite file made it here (the Maildir goes in it)
    for site in serve(coalition):
        response = site.sign_up(name="Am\x00ina")
        assert response.status_code == 400 and site.mails() == []
        assert site.sign_up(name="Amina").status_code == 200  # the same form, mended
        (mail,) = site.mails()
        body = mail.get_body(("plain",))
        assert isinstance(body, EmailMessage)
        found = re.search(r"http://127\.0\.0\.1:8080(/confirm/\S+)", body.get_content())
        assert found
        token = site.form_token(found.group(1))
        assert site.client.post(found.group(1), data={"form_token": token}).status_code == 200
        assert [s["name"] for s in site.subscribers()] == ["Amina"]


def test_issue_14_an_old_link_with_a_control_character_is_not_valid() -> None:
    """A link signed before this check (within confirm_hours) is refused, not stored."""
    links = signup.Links(SECRET, max_age_hours=48)
    token = links.confirmation(signup.Request(email="a@example.org", name="A\x00",
                                              language="en", timezone="UTC", calls=None))
    with pytest.raises(signup.LinkError, match="not valid"):
        links.read(token)


# --- issue 15: tokens in log lines


TOKEN = "eyJlbWFpbCI6ImFAZXhhbXBsZS5vcmcifQ.Z0abcd.Qk9ZxY1-sig_nature"


@pytest.mark.parametrize(("line", "shown"), [
    (f"error answering POST /confirm/{TOKEN}", "error answering POST /confirm/[redacted]"),
    (f"GET /unsubscribe/{TOKEN}?lang=fr", "GET /unsubscribe/[redacted]?lang=fr"),
    (f"https://calls.example.org/manage/{TOKEN}/calls", "https://calls.example.org/manage/"
     "[redacted]/calls"),
    (f"GET /subscribe?token={TOKEN[:8]}&tz=Europe/Brussels",
     "GET /subscribe?token=[redacted]&tz=Europe/Brussels"),
    (f"GET /?lang=en&x={TOKEN}", "GET /?lang=en&x=[redacted]"),
    ("GET /?tz=America/Argentina/Buenos_Aires&lang=fr",
     "GET /?tz=America/Argentina/Buenos_Aires&lang=fr"),
])
def test_issue_15_a_log_record_with_a_token_comes_out_redacted(line: str, shown: str) -> None:
    record = logging.LogRecord("scheduler.web.app", logging.ERROR, __file__, 1, "%s", (line,),
                               None)
    assert log_setup.RedactTokens().filter(record)
    assert record.getMessage() == shown


def test_issue_15_the_error_line_and_traceback_of_a_failed_confirmation_hold_no_token(
        web: Web, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    web.sign_up()
    (mail,) = web.mails()
    body = mail.get_body(("plain",))
    assert isinstance(body, EmailMessage)
    found = re.search(r"http://127\.0\.0\.1:8080(/confirm/(\S+))", body.get_content())
    assert found
    link, token = found.groups()

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"cannot store the member of /confirm/{token}")

    monkeypatch.setattr(signup, "confirm", fail)
    caplog.handler.addFilter(log_setup.RedactTokens())
    response = web.client.post(link, data={"form_token": web.form_token(link)})
    assert response.status_code == 500 and "Traceback" not in response.text
    assert "error answering POST /confirm/[redacted]" in caplog.text
    assert "RuntimeError: cannot store the member of /confirm/[redacted]" in caplog.text
    assert token not in caplog.text


def test_issue_15_the_logging_the_cli_sets_up_redacts_tokens() -> None:
    probe = ("import logging; from scheduler import log; log.setup(); "
             f"logging.getLogger('scheduler.web.app').error('error answering %s %s', 'POST', "
             f"'/confirm/{TOKEN}')")
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert "error answering POST /confirm/[redacted]" in ran.stderr
    assert TOKEN not in ran.stderr


# --- going over the web layer once more


def test_head_of_the_form_and_of_a_confirmation_link_is_the_page(web: Web) -> None:
    assert web.client.head("/subscribe").status_code == 200
    web.sign_up()
    (mail,) = web.mails()
    body = mail.get_body(("plain",))
    assert isinstance(body, EmailMessage)
    found = re.search(r"http://127\.0\.0\.1:8080(/confirm/\S+)", body.get_content())
    assert found
    assert web.client.head(found.group(1)).status_code == 200
    assert web.subscribers() == []


def test_a_trailing_slash_redirects_to_a_path_never_to_the_host_header(web: Web) -> None:
    response = web.client.get("/subscribe/?lang=fr", headers={"Host": "evil.example"},
                              follow_redirects=False)
    assert response.status_code == 308 and response.headers["location"] == "/subscribe?lang=fr"
    assert_security_headers(response)
    assert web.client.get("/nothing-here/", follow_redirects=False).status_code == 404


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/", "GET"), ("DELETE", "/subscribe", "POST"), ("TRACE", "/healthz", "GET"),
    ("PATCH", "/calendars/all.ics", "GET"),
])
def test_an_odd_method_is_a_405_page_that_says_what_is_allowed(
        web: Web, method: str, path: str, allow: str) -> None:
    response = web.client.request(method, path)
    assert response.status_code == 405 and allow in response.headers["allow"]
    assert "text/html" in response.headers["content-type"]
    assert "Traceback" not in response.text
    assert_security_headers(response)


def test_a_body_larger_than_a_form_needs_is_a_413_page(web: Web) -> None:
    token = web.form_token()
    response = web.sign_up(name="x" * MAX_BODY)
    assert response.status_code == 413 and "not one we understand" in response.text
    assert_security_headers(response)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it comes
        yield f"form_token={token}&email=a%40example.org&name=".encode()
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024

    streamed = web.client.post("/subscribe", content=chunks(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413
    assert web.mails() == []


def test_a_form_with_a_file_is_refused(web: Web) -> None:
    response = web.client.post("/subscribe", data={"form_token": web.form_token()},
                               files={"name": ("name.txt", b"Amina")})
    assert response.status_code == 400 and "text/html" in response.headers["content-type"]
    assert web.mails() == []


@pytest.mark.parametrize("name", [
    pytest.param("Smith, José", id="last-name-first"),
    pytest.param('Amélie, "x" <evil@example.org>', id="an-address-in-the-name"),
    pytest.param("é <evil@example.org>,", id="a-list-in-the-name"),
])
def test_a_name_beyond_ascii_stays_the_display_name_of_the_one_recipient(
        web: Web, name: str) -> None:
    """The email package wrote such a name back unquoted: "To: Smith, =?utf-8?q?Jos=C3=A9?=
    <amina@...>" is two recipients, and a name could add one of its choosing. The name is also
    stored in one Unicode form, however the keyboard typed its accents."""
    assert web.sign_up(name=unicodedata.normalize("NFD", name)).status_code == 200
    (mail,) = web.mails()
    assert [(a.display_name, a.addr_spec) for a in mail["To"].addresses] == [
        (name, "amina@example.org")]
