"""Email as it goes on the wire, whichever transport takes it (`maildir`, `smtp`).

An address with letters beyond ASCII before its @ goes with SMTPUTF8 (RFC 6531); its message
carries the address in UTF-8 in its header (RFC 6532). A Maildir takes such messages as they
are; `smtp` says when the server cannot.

A reminder to thousands is one message with thousands of recipients' details: `Prototype` has
the email package build its headers and MIME structure once, and per recipient only To,
Message-ID, the unsubscribe token and the two bodies (quoted-printable, by `binascii`) change.
`send` is for the few messages built one by one (a confirmation, invitations).
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import parseaddr
from typing import TYPE_CHECKING

from scheduler import channels
from scheduler.channels import OnResult, Result, Results
from scheduler.core import addresses
from scheduler.errors import reason

if TYPE_CHECKING:
    from scheduler.config import Settings

log = logging.getLogger(__name__)


def message_id(sender: str, kind: str, *key: object) -> str:
    """The same message always gets the same Message-ID: a resend is recognisable as one."""
    digest = hashlib.sha256("|".join(map(str, key)).encode()).hexdigest()[:32]
    return f"<{kind}.{digest}@{_domain(sender)}>"


@functools.cache
def _domain(sender: str) -> str:
    return parseaddr(sender)[1].partition("@")[2] or "coalition-calls"


@dataclass(frozen=True, kw_only=True)
class Outgoing:
    """One message as it goes on the wire, to one recipient."""

    message_id: str
    recipient: str  # the envelope recipient: an address
    data: bytes

    @classmethod
    def of(cls, message: EmailMessage) -> Outgoing:
        """A message the email package built; one to an address beyond ASCII is written with
        its headers in UTF-8 (RFC 6532), since an encoded word is not allowed in an address."""
        recipient = parseaddr(str(message["To"]))[1]
        utf8 = addresses.needs_smtputf8(recipient)
        return cls(message_id=str(message["Message-ID"]),
                   recipient=addresses.for_sending(recipient),
                   data=message.as_bytes(policy=SMTPUTF8 if utf8 else SMTP))


_TO, _ID = "to@placeholder.invalid", "<id@placeholder.invalid>"
UNFOLDED = SMTP.clone(max_line_length=998)
_TEXT, _HTML = "@@coalition-text-body@@", "@@coalition-html-body@@"


def _quoted_printable(text: str) -> bytes:
    body = text if text.endswith("\n") else text + "\n"
    return binascii.b2a_qp(body.replace("\r\n", "\n").replace("\n", "\r\n").encode(),
                           istext=True).removesuffix(b"\r\n")


class Prototype:
    """One text (plain and HTML) for many recipients. `headers` are the same for all of them;
    `secret` is a placeholder that each recipient's `secret` replaces, in headers and bodies
    (the token of their unsubscribe link)."""

    def __init__(self, headers: Mapping[str, str], *, text: str, html: str, secret: str) -> None:
        message = EmailMessage()
        for name, value in headers.items():
            message[name] = value
        message["To"], message["Message-ID"] = _TO, _ID
        message.set_content(_TEXT, cte="quoted-printable")
        message.add_alternative(_HTML, subtype="html", cte="quoted-printable")
        # ASCII headers are left on one line (RFC 5322 allows 998 characters): Python folds
        # some, such as "Subject: Call: Tuesday, ...", before their first word. Others need
        # RFC 2047 encoded words of at most 75 characters, which folding at 78 gives.
        ascii_only = all(str(value).isascii() for value in headers.values())
        self.data = message.as_bytes(policy=UNFOLDED if ascii_only else SMTP)
        self.text, self.html, self.secret = text, html, secret

    def to(self, *, name: str, address: str, message_id: str, secret: str) -> Outgoing:
        text = _quoted_printable(self.text.replace(self.secret, secret))
        html = _quoted_printable(self.html.replace(self.secret, secret))
        address = addresses.for_sending(address)
        to = addresses.formatted(name, address).encode()
        data = (self.data.replace(_TO.encode(), to).replace(_ID.encode(), message_id.encode())
                .replace(self.secret.encode(), secret.encode())
                .replace(_TEXT.encode(), text).replace(_HTML.encode(), html))
        return Outgoing(message_id=message_id, recipient=address, data=data)


def send(settings: Settings, messages: Sequence[EmailMessage | Outgoing],
         on_result: OnResult | None = None) -> list[Result]:
    """Send through the transport config.toml names. A message the email package cannot
    write fails alone, first."""
    results = Results(on_result)
    ready = []
    for message in messages:
        if isinstance(message, Outgoing):
            ready.append(message)
            continue
        try:
            ready.append(Outgoing.of(message))
        except Exception as e:
            log.warning("mail %s cannot be written: %s", message["Message-ID"], reason(e))
            results.append(Result(key=str(message["Message-ID"]), recipient=str(message["To"]),
                                  error=reason(e), permanent=True))
    if not ready:
        return list(results)
    transport = channels.email(settings)
    try:
        return [*results, *transport.send(ready, on_result)]
    finally:
        transport.close()
