"""SMTP with STARTTLS and with implicit TLS, certificates checked, as config.toml sets it."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller

from tests.conftest import Coalition, SmtpSink, free_port, use_smtp
from tests.test_cli_calls import ADD, SLUG


@pytest.fixture
def authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    """A CA the client trusts (through SSL_CERT_FILE), as a real deployment trusts its own."""
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return ca


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(params=["starttls", "tls"])
def secure_sink(request: pytest.FixtureRequest, authority: trustme.CA
                ) -> Iterator[tuple[SmtpSink, int, str]]:
    sink, port = SmtpSink(), free_port()
    if request.param == "starttls":
        controller = Controller(sink, hostname="127.0.0.1", port=port,
                                tls_context=server_context(authority), require_starttls=True)
    else:
        controller = Controller(sink, hostname="127.0.0.1", port=port,
                                ssl_context=server_context(authority))
    controller.start()
    yield sink, port, request.param
    controller.stop()


def test_invitation_goes_out_over_tls(coalition: Coalition,
                                      secure_sink: tuple[SmtpSink, int, str]) -> None:
    sink, port, security = secure_sink
    config = coalition.config
    use_smtp(config, port)
    config.write_text(config.read_text().replace('security = "none"', f'security = "{security}"'))
    assert coalition(*ADD).exit_code == 0
    ran = coalition("invite", SLUG, "--to", "ada@example.org")
    assert ran.exit_code == 0, ran.stderr
    assert sink.recipients() == ["ada@example.org"]


def test_plain_connection_to_a_starttls_only_server_is_refused_not_lost(
    coalition: Coalition, authority: trustme.CA
) -> None:
    sink, port = SmtpSink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port,
                            tls_context=server_context(authority), require_starttls=True)
    controller.start()
    try:
        use_smtp(coalition.config, port)
        assert coalition(*ADD).exit_code == 0
        ran = coalition("invite", SLUG, "--to", "ada@example.org")
        assert ran.exit_code == 1 and "invitation not sent to ada@example.org: 530" in ran.stderr
        assert sink.received == []
    finally:
        controller.stop()
