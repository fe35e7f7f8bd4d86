"""`coalition doctor`: one line per thing the service needs, exit 2 when one is missing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import Coalition, Ran, SmtpSink, free_port, use_smtp
from tests.discourse_standin import Forum, Running


def only_ada(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    good = isinstance(data, LoginPassword) and (data.login, data.password) == (b"ada", b"s3cret")
    return AuthResult(success=good, handled=False)  # False: the server answers 535 itself


@pytest.fixture
def smtp_with_login() -> Iterator[int]:
    port = free_port()
    controller = Controller(SmtpSink(), hostname="127.0.0.1", port=port,
                            authenticator=only_ada, auth_require_tls=False)
    controller.start()
    yield port
    controller.stop()


def lines(ran: Ran) -> dict[str, str]:
    return {line.split(":")[0]: line for line in (ran.stdout + ran.stderr).splitlines()}


def test_embedded_default_is_healthy(coalition: Coalition) -> None:
    ran = coalition("doctor")
    assert ran.exit_code == 0
    assert set(lines(ran)) == {"config", "database", "templates", "email", "forum"}
    assert all(": ok: " in line for line in lines(ran).values())


def test_smtp_login_is_tried_with_the_password_from_the_environment(
    coalition: Coalition, smtp_with_login: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = coalition.config
    use_smtp(config, smtp_with_login)
    config.write_text(config.read_text().replace('username = ""', 'username = "ada"'))
    monkeypatch.setenv("COALITION_SMTP_PASSWORD", "s3cret")
    ran = coalition("doctor")
    assert ran.exit_code == 0 and "logged in as ada" in lines(ran)["email"]
    monkeypatch.setenv("COALITION_SMTP_PASSWORD", "wrong")
    ran = coalition("doctor")
    assert ran.exit_code == 2 and lines(ran)["email"].startswith("email: error: SMTP")
    monkeypatch.delenv("COALITION_SMTP_PASSWORD")
    assert "COALITION_SMTP_PASSWORD is not set" in lines(coalition("doctor"))["email"]


def test_smtp_server_down_is_reported(coalition: Coalition) -> None:
    use_smtp(coalition.config, free_port())
    ran = coalition("doctor")
    assert ran.exit_code == 2 and "email: error: SMTP 127.0.0.1:" in lines(ran)["email"]


def test_discourse_key_is_checked(coalition: Coalition, monkeypatch: pytest.MonkeyPatch) -> None:
    running = Running(Forum(api_key="good-key"), free_port())
    try:
        config = coalition.config
        text = config.read_text().replace('transport = "files"', 'transport = "discourse"')
        config.write_text(text.replace('url = "https://forum.example.org"',
                                       f'url = "{running.url}"'))
        monkeypatch.setenv("COALITION_DISCOURSE_API_KEY", "good-key")
        assert "accepts the key of system" in lines(coalition("doctor"))["forum"]
        monkeypatch.setenv("COALITION_DISCOURSE_API_KEY", "bad-key")
        ran = coalition("doctor")
        assert ran.exit_code == 2 and lines(ran)["forum"].startswith("forum: error: 403")
    finally:
        running.stop()
