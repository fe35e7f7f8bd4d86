"""Sending email: into a local Maildir (the embedded default) or through SMTP (aiosmtplib).

Both take a batch of messages and say, per message, whether it went out. SMTP sends a batch
over `[email.smtp] connections` connections at once. A 4xx answer or a lost connection is
temporary (try again later); a 5xx answer is permanent. Nothing here retries: the caller
decides. Whatever one message raises ends as that message's failure, never the batch's.

An address with letters beyond ASCII before its @ goes with SMTPUTF8 (RFC 6531) when the server
offers it, and otherwise fails for good with a reason that says so; its message carries the
address in UTF-8 in its header (RFC 6532). A Maildir takes such messages as they are.

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
from email.policy import SMTP, SMTPUTF8
from email.utils import parseaddr
from pathlib import Path

import aiosmtplib

from scheduler import loop
from scheduler.config import Settings
from scheduler.core import addresses

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Sent:
    message_id: str
    recipient: str
    error: str | None = None
    permanent: bool = False
    unusable: bool = False  # the address itself cannot be used (refused, or needs SMTPUTF8)

    @property
    def ok(self) -> bool:
        return self.error is None


def message_id(sender: str, kind: str, *key: object) -> str:
    """The same message always gets the same Message-ID: a resend is recognisable as one."""
    digest = hashlib.sha256("|".join(map(str, key)).encode()).hexdigest()[:32]
    return f"<{kind}.{digest}@{_domain(sender)}>"


def _reason(error: Exception) -> str:
    """An unexpected error as one line, for the delivery's record and the log."""
    return f"{type(error).__name__}: {error}".splitlines()[0]


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
        results.append(_write_one(box, folder, message))
    return list(results)


def _write_one(box: mailbox.Maildir, folder: Path, message: Outgoing) -> Sent:
    message_id, recipient = message.message_id, message.recipient
    try:
        box.add(message.data.replace(b"\r\n", b"\n"))
    except OSError as e:  # a full disk, a folder taken away: try again later
        return Sent(message_id=message_id, recipient=recipient,
                    error=f"cannot write to {folder}: {e.strerror or e}")
    except Exception as e:  # this message cannot be written, whatever else can
        log.warning("mail %s to %s cannot be written: %s", message_id, recipient, _reason(e))
        return Sent(message_id=message_id, recipient=recipient, error=_reason(e),
                    permanent=True)
    log.info("mail %s to %s written to %s", message_id, recipient, folder)
    return Sent(message_id=message_id, recipient=recipient)


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
        except Exception as e:  # a refusal, a timeout, a bad certificate: all retried
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
    beyond_ascii = [a for a in (recipient, sender) if addresses.needs_smtputf8(a)]
    try:
        refused, _ = await connection.sendmail(
            sender, [recipient], message.data, mail_options=["SMTPUTF8"] if beyond_ascii else [])
    except aiosmtplib.SMTPNotSupported:  # raised before anything is sent: the session is fine
        return Sent(message_id=message_id, recipient=recipient, permanent=True, unusable=True,
                    error=f"the server {host} does not offer SMTPUTF8, which the address "
                          f"{beyond_ascii[0] if beyond_ascii else recipient} needs")
    except aiosmtplib.SMTPRecipientsRefused as e:  # every recipient was refused
        first = e.recipients[0]
        return Sent(message_id=message_id, recipient=recipient, unusable=True,
                    error=f"{first.code} {first.message}", permanent=500 <= first.code < 600)
    except aiosmtplib.SMTPResponseException as e:
        return Sent(message_id=message_id, recipient=recipient, error=f"{e.code} {e.message}",
                    permanent=500 <= e.code < 600)
    except (aiosmtplib.SMTPException, OSError) as e:
        return Sent(message_id=message_id, recipient=recipient, error=str(e) or "connection lost")
    except Exception as e:  # this message cannot be sent, whatever else can
        log.warning("mail %s to %s cannot be sent: %s", message_id, recipient, _reason(e))
        try:  # the next message starts from a clean session, or on another connection
            await connection.rset()
        except Exception:
            connection.close()
        return Sent(message_id=message_id, recipient=recipient, error=_reason(e), permanent=True)
    if refused:
        code, text = next(iter(refused.values()))
        return Sent(message_id=message_id, recipient=recipient, error=f"{code} {text}",
                    permanent=500 <= code < 600, unusable=True)
    log.debug("mail %s to %s accepted by %s", message_id, recipient, host)
    return Sent(message_id=message_id, recipient=recipient)


def send(settings: Settings, messages: Sequence[EmailMessage | Outgoing],
         on_result: OnResult | None = None) -> list[Sent]:
    """Send through the transport config.toml names. A message the email package cannot
    write fails alone, first."""
    results = _Results(on_result)
    ready = []
    for message in messages:
        if isinstance(message, Outgoing):
            ready.append(message)
            continue
        try:
            ready.append(Outgoing.of(message))
        except Exception as e:
            log.warning("mail %s cannot be written: %s", message["Message-ID"], _reason(e))
            results.append(Sent(message_id=str(message["Message-ID"]),
                                recipient=str(message["To"]), error=_reason(e), permanent=True))
    if not ready:
        return list(results)
    if settings.email.transport == "maildir":
        return [*results, *to_maildir(settings.maildir, ready, on_result)]
    return [*results, *loop.run(to_smtp(settings, ready, on_result))]
