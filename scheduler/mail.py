"""Sending email: into a local Maildir (the embedded default) or through SMTP (aiosmtplib).

Both take a batch of messages and say, per message, whether it went out. SMTP uses one
connection for the batch. A 4xx answer or a lost connection is temporary (try again later); a
5xx answer is permanent. Nothing here retries: the caller decides.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mailbox
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import aiosmtplib

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
    domain = parseaddr(sender)[1].partition("@")[2] or "coalition-calls"
    return f"<{kind}.{digest}@{domain}>"


def _ids(message: EmailMessage) -> tuple[str, str]:
    return str(message["Message-ID"]), str(message["To"])


OnResult = Callable[[Sent], None]


class _Results(list[Sent]):
    """The results so far; each one is also handed to `on_result` as soon as it is known, so
    the caller can record it before the next message goes (a crash then repeats one message,
    not a batch)."""

    def __init__(self, on_result: OnResult | None) -> None:
        super().__init__()
        self.on_result = on_result

    def append(self, result: Sent) -> None:
        super().append(result)
        if self.on_result is not None:
            self.on_result(result)


def to_maildir(folder: Path, messages: Sequence[EmailMessage],
               on_result: OnResult | None = None) -> list[Sent]:
    """Each message becomes a file in folder/new (written to tmp/ first, then moved)."""
    box = mailbox.Maildir(folder, create=True)
    results = _Results(on_result)
    for message in messages:
        message_id, recipient = _ids(message)
        try:
            box.add(message)
        except OSError as e:
            results.append(Sent(message_id=message_id, recipient=recipient,
                                error=f"cannot write to {folder}: {e.strerror}"))
            continue
        log.info("mail %s to %s written to %s", message_id, recipient, folder)
        results.append(Sent(message_id=message_id, recipient=recipient))
    return list(results)


async def to_smtp(settings: Settings, messages: Sequence[EmailMessage],
                  on_result: OnResult | None = None) -> list[Sent]:
    smtp = settings.smtp
    client = aiosmtplib.SMTP(
        hostname=smtp.host, port=smtp.port, timeout=smtp.timeout,
        use_tls=smtp.security == "tls", start_tls=smtp.security == "starttls",
        username=smtp.username or None, password=smtp.password() or None,
    )
    results = _Results(on_result)
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as e:
        reason = f"cannot reach {smtp.host}:{smtp.port}: {e}"
        for m in messages:
            results.append(Sent(message_id=_ids(m)[0], recipient=_ids(m)[1], error=reason))
        return list(results)
    try:
        for message in messages:
            message_id, recipient = _ids(message)
            try:
                refused, _ = await client.send_message(message)
            except aiosmtplib.SMTPRecipientsRefused as e:  # every recipient was refused
                first = e.recipients[0]
                results.append(Sent(message_id=message_id, recipient=recipient,
                                    error=f"{first.code} {first.message}",
                                    permanent=500 <= first.code < 600))
                continue
            except aiosmtplib.SMTPResponseException as e:
                results.append(Sent(message_id=message_id, recipient=recipient,
                                    error=f"{e.code} {e.message}", permanent=500 <= e.code < 600))
                continue
            except (aiosmtplib.SMTPException, OSError) as e:
                results.append(Sent(message_id=message_id, recipient=recipient, error=str(e)))
                continue
            if refused:
                code, text = next(iter(refused.values()))
                results.append(Sent(message_id=message_id, recipient=recipient,
                                    error=f"{code} {text}", permanent=500 <= code < 600))
            else:
                log.info("mail %s to %s accepted by %s", message_id, recipient, smtp.host)
                results.append(Sent(message_id=message_id, recipient=recipient))
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
    sent = {r.message_id for r in results}
    for m in messages:
        if _ids(m)[0] not in sent:
            results.append(Sent(message_id=_ids(m)[0], recipient=_ids(m)[1],
                                error="connection lost"))
    return list(results)


def send(settings: Settings, messages: Sequence[EmailMessage],
         on_result: OnResult | None = None) -> list[Sent]:
    """Send through the transport config.toml names."""
    if not messages:
        return []
    if settings.email.transport == "maildir":
        return to_maildir(settings.maildir, messages, on_result)
    return asyncio.run(to_smtp(settings, messages, on_result))
