"""One reminder rendered once and sent to many: each recipient's message must read exactly as
if the email package had built it for them alone."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from scheduler.channels.mail import Prototype

PLACEHOLDER = "token-placeholder"
TEXT = ("Bonjour,\n\nL’appel de la coalition commence dans 20 minutes, à 16:00 (Kinshasa). "
        "Une ligne assez longue pour être coupée en quoted-printable, avec des accents : "
        "éàèùç, et un lien https://example.org/unsubscribe/" + PLACEHOLDER + "\n")
HTML = ('<p>L’appel commence dans <strong>20 minutes</strong>.</p>\n<p><a href="https://'
        'example.org/unsubscribe/' + PLACEHOLDER + '">Se désabonner</a></p>\n')


@pytest.mark.parametrize("subject", [
    "Justice For All coalition call: Tuesday, March 12, 2019, 9:00 PM Jakarta",
    "L’appel de la coalition « Justice pour tous » commence dans 20 minutes à Kinshasa",
])
def test_each_recipient_gets_a_whole_message_of_their_own(subject: str) -> None:
    prototype = Prototype({
        "From": "Coalition calls <calls@example.org>", "Subject": subject,
        "List-Unsubscribe": f"<https://example.org/unsubscribe/{PLACEHOLDER}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }, text=TEXT, html=HTML, secret=PLACEHOLDER)
    token = "Yx3_secret-token-of-amelie-0123"
    out = prototype.to(name="Amélie Ngoy", address="amelie@example.org",
                       message_id="<reminder.1@example.org>", secret=token)
    assert out.recipient == "amelie@example.org" and out.message_id == "<reminder.1@example.org>"
    assert all(len(line) <= 998 for line in out.data.split(b"\r\n"))
    assert b"\n" not in out.data.replace(b"\r\n", b"")  # CRLF only, as on the wire
    message = message_from_bytes(out.data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert str(message["To"]) == "Amélie Ngoy <amelie@example.org>"
    assert str(message["Subject"]).strip() == subject
    assert str(message["Message-ID"]) == "<reminder.1@example.org>"
    assert str(message["List-Unsubscribe"]) == f"<https://example.org/unsubscribe/{token}>"
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    # CRLF on the wire reads back as CRLF, exactly as from the email package's own messages
    assert text.get_content().replace("\r\n", "\n") == TEXT.replace(PLACEHOLDER, token)
    assert html.get_content().replace("\r\n", "\n") == HTML.replace(PLACEHOLDER, token)
    assert PLACEHOLDER.encode() not in out.data


def test_recipients_do_not_see_each_other() -> None:
    prototype = Prototype({"From": "calls@example.org", "Subject": "Soon"}, text=TEXT,
                          html=HTML, secret=PLACEHOLDER)
    ada = prototype.to(name="Ada", address="ada@example.org", message_id="<1@x>", secret="a" * 32)
    bea = prototype.to(name="", address="bea@example.org", message_id="<2@x>", secret="b" * 32)
    assert b"ada@example.org" not in bea.data and b"a" * 32 not in bea.data
    assert b"bea@example.org" not in ada.data and b"b" * 32 not in ada.data
    assert str(message_from_bytes(bea.data, policy=policy.default)["To"]) == "bea@example.org"
