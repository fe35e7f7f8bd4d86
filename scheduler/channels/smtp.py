"""Email through an SMTP server (aiosmtplib).

A batch goes over up to `[email.smtp] connections` connections at once, each taking the next
message as soon as it is free. A 4xx answer or a lost connection is temporary (try again
later); a 5xx answer is permanent. An address with letters beyond ASCII before its @ goes with
SMTPUTF8 (RFC 6531) when the server offers it, and otherwise fails for good with a reason that
says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from email.utils import parseaddr
from typing import TYPE_CHECKING

import aiosmtplib

from scheduler import loop
from scheduler.channels import EMAIL, Health, OnResult, Result, Results
from scheduler.channels.mail import Outgoing
from scheduler.core import addresses
from scheduler.errors import reason

if TYPE_CHECKING:
    from scheduler.config import Settings, SmtpSettings

log = logging.getLogger(__name__)


class Smtp:
    channel = EMAIL

    def __init__(self, smtp: SmtpSettings, *, sender: str) -> None:
        self.smtp = smtp
        self.sender = parseaddr(sender)[1]

    @classmethod
    def from_settings(cls, settings: Settings) -> Smtp:
        return cls(settings.smtp, sender=settings.email.sender)

    def _client(self) -> aiosmtplib.SMTP:
        """A client for the configured server; it logs in when it connects."""
        smtp = self.smtp
        return aiosmtplib.SMTP(
            hostname=smtp.host, port=smtp.port, timeout=smtp.timeout,
            use_tls=smtp.security == "tls", start_tls=smtp.security == "starttls",
            username=smtp.username or None, password=smtp.password() or None)

    def send(self, items: Sequence[Outgoing], on_result: OnResult | None = None) -> list[Result]:
        return loop.run(self.send_async(items, on_result))

    async def send_async(self, messages: Sequence[Outgoing],
                         on_result: OnResult | None = None) -> list[Result]:
        smtp = self.smtp
        results = Results(on_result)
        waiting = deque(messages)

        async def connected() -> aiosmtplib.SMTP | str:
            connection = self._client()
            try:
                await connection.connect()
            except Exception as e:  # a refusal, a timeout, a bad certificate: all retried
                return f"cannot reach {smtp.host}:{smtp.port}: {e}"
            return connection

        async def work(connection: aiosmtplib.SMTP) -> None:
            try:
                while waiting:
                    message = waiting.popleft()
                    results.append(await self._send_one(connection, message))
                    if not connection.is_connected:
                        return
            finally:
                try:
                    await connection.quit()
                except (aiosmtplib.SMTPException, OSError):
                    connection.close()

        if not messages:
            return []
        count = max(1, min(smtp.connections, len(messages)))
        clients = await asyncio.gather(*(connected() for _ in range(count)))
        working = [c for c in clients if not isinstance(c, str)]
        if not working:
            why = str(clients[0])
            for m in messages:
                results.append(Result(key=m.message_id, recipient=m.recipient, error=why))
            return list(results)
        await asyncio.gather(*(work(c) for c in working))
        for m in waiting:  # every connection was lost before these
            results.append(Result(key=m.message_id, recipient=m.recipient,
                                  error="connection lost"))
        return list(results)

    async def _send_one(self, connection: aiosmtplib.SMTP, message: Outgoing) -> Result:
        key, recipient, host = message.message_id, message.recipient, self.smtp.host
        beyond_ascii = [a for a in (recipient, self.sender) if addresses.needs_smtputf8(a)]
        try:
            refused, _ = await connection.sendmail(
                self.sender, [recipient], message.data,
                mail_options=["SMTPUTF8"] if beyond_ascii else [])
        except aiosmtplib.SMTPNotSupported:  # raised before anything is sent: the session is fine
            return Result(key=key, recipient=recipient, permanent=True, unusable=True,
                          error=f"the server {host} does not offer SMTPUTF8, which the address "
                                f"{beyond_ascii[0] if beyond_ascii else recipient} needs")
        except aiosmtplib.SMTPRecipientsRefused as e:  # every recipient was refused
            first = e.recipients[0]
            return Result(key=key, recipient=recipient, unusable=True,
                          error=f"{first.code} {first.message}",
                          permanent=500 <= first.code < 600)
        except aiosmtplib.SMTPResponseException as e:
            return Result(key=key, recipient=recipient, error=f"{e.code} {e.message}",
                          permanent=500 <= e.code < 600)
        except (aiosmtplib.SMTPException, OSError) as e:
            return Result(key=key, recipient=recipient, error=str(e) or "connection lost")
        except Exception as e:  # this message cannot be sent, whatever else can
            log.warning("mail %s to %s cannot be sent: %s", key, recipient, reason(e))
            try:  # the next message starts from a clean session, or on another connection
                await connection.rset()
            except Exception:
                connection.close()
            return Result(key=key, recipient=recipient, error=reason(e), permanent=True)
        if refused:
            code, text = next(iter(refused.values()))
            return Result(key=key, recipient=recipient, error=f"{code} {text}",
                          permanent=500 <= code < 600, unusable=True)
        log.debug("mail %s to %s accepted by %s", key, recipient, host)
        return Result(key=key, recipient=recipient, receipt=key)

    def check(self) -> Health:
        smtp = self.smtp
        if smtp.username and not smtp.password():
            return Health(ok=False, detail=f"{smtp.password_env} is not set")

        async def log_in() -> None:
            client = self._client()
            await client.connect()
            await client.quit()

        try:
            loop.run(log_in())
        except (aiosmtplib.SMTPException, OSError) as e:
            return Health(ok=False, detail=f"SMTP {smtp.host}:{smtp.port}: {e}")
        login = f", logged in as {smtp.username}" if smtp.username else ""
        return Health(ok=True, detail=f"SMTP {smtp.host}:{smtp.port} ({smtp.security}){login}")

    def close(self) -> None:
        pass
