"""Email as it goes on the wire, whichever transport takes it (`maildir`, `smtp`).

An address with letters beyond ASCII before its @ goes with SMTPUTF8 (RFC 6531); its message
carries the address in UTF-8 in its header (RFC 6532). A Maildir takes such messages as they
are; `smtp` says when the server cannot.

A reminder to thousands is one message with thousands of recipients' details: `Prototype` has
the email package build its headers and MIME structure once, and per recipient only To,
Message-ID, the unsubscribe token and the two bodies (quoted-printable, by `binascii`) change.
`send` is for the few messages built one by one (a confirmation, invitations).

A header beyond ASCII, such as a French or Arabic Subject, is written as RFC 2047 encoded words
that carry its spaces inside them (`EncodedWords`): the email package of Python 3.11 folds such
a header into words with the space between them outside, where a reader drops it ("Afrique de"
read "Afriquede").
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.header import Header
from email.headerregistry import BaseHeader, UnstructuredHeader
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import parseaddr
from typing import TYPE_CHECKING

from scheduler import channels
from scheduler.channels import OnResult, Result, Results
from scheduler.core import addresses
from scheduler.errors import reason

if TYPE_CHECKING:
    from scheduler.config import Settings

log = logging.getLogger(__name__)


class EncodedWords(EmailPolicy):
    """The email package's policy, but a free-text header (Subject) beyond ASCII is written
    whole as encoded words (`email.header.Header`), each at most 75 characters, split between
    characters and never between the bytes of one: it reads back exactly as it was given."""

    def _encoded(self, name: str, value: object) -> str | None:
        if (self.utf8 or name.lower() != "subject" or not isinstance(value, UnstructuredHeader)
                or not isinstance(value, BaseHeader) or str(value).isascii()):
            return None  # List-Id and the like keep their <...> readable: see `list_id`
        # 76: a folded line's leading space and a word of at most 75 (RFC 2047)
        words = Header(str(value), "utf-8", header_name=name, maxlinelen=76).encode(
            linesep=self.linesep)
        return f"{name}: {words}{self.linesep}"

    def fold(self, name: str, value: str) -> str:
        return self._encoded(name, value) or super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        encoded = self._encoded(name, value)
        return encoded.encode("ascii") if encoded else super().fold_binary(name, value)


SMTP = EncodedWords(linesep="\r\n")
SMTPUTF8 = SMTP.clone(utf8=True)


def message_id(sender: str, kind: str, *key: object) -> str:
    """The same message always gets the same Message-ID: a resend is recognisable as one."""
    digest = hashlib.sha256("|".join(map(str, key)).encode()).hexdigest()[:32]
    return f"<{kind}.{digest}@{_domain(sender)}>"


@functools.cache
def _domain(sender: str) -> str:
    return parseaddr(sender)[1].partition("@")[2] or "coalition-calls"


def list_id(sender: str) -> str:
    """The List-Id (RFC 2919) of everything sent to members from `sender`: its name, and its
    address as a dot-atom, "Coalition calls <calls.example.org>"."""
    name, address = parseaddr(sender)
    local, _, domain = address.rpartition("@")
    label = re.sub(r"[^A-Za-z0-9-]+", "-", local).strip("-") or "calls"
    try:
        namespace = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        namespace = ""
    namespace = ".".join(re.sub(r"[^a-z0-9-]+", "-", part).strip("-") or "x"
                         for part in namespace.split(".")) if namespace else "coalition-calls"
    name = name or "Coalition calls"
    if not name.isascii():  # the name alone in encoded words: filters match the <...> as it is
        name = Header(name, "utf-8").encode()
    elif re.search(r'[^A-Za-z0-9 !#$%&\'*+/=?^_`{|}~-]', name):  # a comma, a dot: quoted
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{label}.{namespace}>"


def automatic(settings: Settings) -> dict[str, str]:
    """The headers of every message sent by itself, not written by a person: Auto-Submitted
    (RFC 3834: no vacation replies to it), and Reply-To where config.toml names whom replies
    reach (`[email] reply_to`), since the sender's address is not read."""
    reply_to = settings.email.reply_to
    return {"Auto-Submitted": "auto-generated", **({"Reply-To": reply_to} if reply_to else {})}


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
