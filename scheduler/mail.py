"""Sending email: into a local Maildir (the embedded default) or through SMTP (aiosmtplib).

Both take a batch of messages and say, per message, whether it went out. SMTP sends a batch
over `[email.smtp] connections` connections at once. A 4xx answer or a lost connection is
temporary (try again later); a 5xx answer is permanent. Nothing here retries: the caller
decides.

A reminder to thousands is one message with thousands of recipients' details: `Prototype` has
the email package build its headers and MIME structure once, and per recipient only To,
Message-ID, the unsubscribe token and the two bodies (quoted-printable, by `binascii`) change.
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import hashlib
import logging
import mailbox
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, parseaddr
from pathlib import Path

import aiosmtplib

from scheduler import loop
from scheduler.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Sent:
    message_id: str
    recipient: str
    error: str | None = None
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


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
        return cls(message_id=str(message["Message-ID"]),
                   recipient=parseaddr(str(message["To"]))[1],
                   data=message.as_bytes(policy=SMTP))


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
        to = formataddr((name, address), charset="utf-8").encode()
        data = (self.data.replace(_TO.encode(), to).replace(_ID.encode(), message_id.encode())
                .replace(self.secret.encode(), secret.encode())
                .replace(_TEXT.encode(), text).replace(_HTML.encode(), html))
        return Outgoing(message_id=message_id, recipient=address, data=data)


OnResult = Callable[[Sent], None]


class _Results(list[Sent]):
    """The results so far; each one is also handed to `on_result` as soon as it is known, so
    the caller can record it while the next messages go (a crash then repeats a few messages,
    not a batch), and stop the sending by raising."""

    def __init__(self, on_result: OnResult | None) -> None:
        super().__init__()
        self.on_result = on_result

    def append(self, result: Sent) -> None:
        super().append(result)
        if self.on_result is not None:
            self.on_result(result)


def to_maildir(folder: Path, messages: Sequence[Outgoing],
               on_result: OnResult | None = None) -> list[Sent]:
    """Each message becomes a file in folder/new (written to tmp/ first, then moved)."""
    box = mailbox.Maildir(folder, create=True)
    results = _Results(on_result)
    for message in messages:
        message_id, recipient = message.message_id, message.recipient
        try:
            box.add(message.data.replace(b"\r\n", b"\n"))
        except OSError as e:
            results.append(Sent(message_id=message_id, recipient=recipient,
                                error=f"cannot write to {folder}: {e.strerror}"))
            continue
        log.info("mail %s to %s written to %s", message_id, recipient, folder)
        results.append(Sent(message_id=message_id, recipient=recipient))
    return list(results)


async def to_smtp(settings: Settings, messages: Sequence[Outgoing],
                  on_result: OnResult | None = None) -> list[Sent]:
    """The batch over up to `[email.smtp] connections` connections, each taking the next
    message as soon as it is free."""
    smtp = settings.smtp
    sender = parseaddr(settings.email.sender)[1]
    results = _Results(on_result)
    waiting = deque(messages)

    def client() -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=smtp.host, port=smtp.port, timeout=smtp.timeout,
            use_tls=smtp.security == "tls", start_tls=smtp.security == "starttls",
            username=smtp.username or None, password=smtp.password() or None)

    async def connected() -> aiosmtplib.SMTP | str:
        connection = client()
        try:
            await connection.connect()
        except (aiosmtplib.SMTPException, OSError) as e:
            return f"cannot reach {smtp.host}:{smtp.port}: {e}"
        return connection

    async def work(connection: aiosmtplib.SMTP) -> None:
        try:
            while waiting:
                message = waiting.popleft()
                results.append(await _send_one(connection, sender, message, smtp.host))
                if not connection.is_connected:
                    return
        finally:
            try:
                await connection.quit()
            except (aiosmtplib.SMTPException, OSError):
                connection.close()

    count = max(1, min(smtp.connections, len(messages)))
    clients = await asyncio.gather(*(connected() for _ in range(count)))
    working = [c for c in clients if not isinstance(c, str)]
    if not working:
        reason = str(clients[0])
        for m in messages:
            results.append(Sent(message_id=m.message_id, recipient=m.recipient, error=reason))
        return list(results)
    await asyncio.gather(*(work(c) for c in working))
    for m in waiting:  # every connection was lost before these
        results.append(Sent(message_id=m.message_id, recipient=m.recipient,
                            error="connection lost"))
    return list(results)


async def _send_one(connection: aiosmtplib.SMTP, sender: str, message: Outgoing,
                    host: str) -> Sent:
    message_id, recipient = message.message_id, message.recipient
    try:
        refused, _ = await connection.sendmail(sender, [recipient], message.data)
    except aiosmtplib.SMTPRecipientsRefused as e:  # every recipient was refused
        first = e.recipients[0]
        return Sent(message_id=message_id, recipient=recipient,
                    error=f"{first.code} {first.message}", permanent=500 <= first.code < 600)
    except aiosmtplib.SMTPResponseException as e:
        return Sent(message_id=message_id, recipient=recipient, error=f"{e.code} {e.message}",
                    permanent=500 <= e.code < 600)
    except (aiosmtplib.SMTPException, OSError) as e:
        return Sent(message_id=message_id, recipient=recipient, error=str(e) or "connection lost")
    if refused:
        code, text = next(iter(refused.values()))
        return Sent(message_id=message_id, recipient=recipient, error=f"{code} {text}",
                    permanent=500 <= code < 600)
    log.debug("mail %s to %s accepted by %s", message_id, recipient, host)
    return Sent(message_id=message_id, recipient=recipient)


def send(settings: Settings, messages: Sequence[EmailMessage | Outgoing],
         on_result: OnResult | None = None) -> list[Sent]:
    """Send through the transport config.toml names."""
    if not messages:
        return []
    ready = [m if isinstance(m, Outgoing) else Outgoing.of(m) for m in messages]
    if settings.email.transport == "maildir":
        return to_maildir(settings.maildir, ready, on_result)
    return loop.run(to_smtp(settings, ready, on_result))
