"""Email through an SMTP server (aiosmtplib, and RFC 2920 pipelining where it is offered).

A batch goes over up to `[email.smtp] connections` connections at once, each taking the next
message as soon as it is free. aiosmtplib opens each connection (EHLO, STARTTLS or TLS, AUTH);
where the server offers PIPELINING, `pipelining.Pipeline` then sends a message a round trip,
and elsewhere aiosmtplib sends it, a round trip a command. `messages_per_connection` opens a
new connection after so many messages; `rate` ("14/second") spaces the transactions out, over
all the connections of this process to that server. A 4xx answer or a lost connection is
temporary (try again later); a 5xx answer is permanent. An address with letters beyond ASCII
before its @ goes with SMTPUTF8 (RFC 6531) when the server offers it, and otherwise fails for
good with a reason that says so.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from email.utils import parseaddr
from typing import TYPE_CHECKING

import aiosmtplib
from limits import parse as parse_rate

from scheduler import loop
from scheduler.channels import EMAIL, Health, OnResult, Result, Results, pipelining
from scheduler.channels.mail import Outgoing
from scheduler.core import addresses
from scheduler.errors import reason

if TYPE_CHECKING:
    from scheduler.config import Settings, SmtpSettings

log = logging.getLogger(__name__)


class Pace:
    """At most `amount` transactions start in any `period` seconds: a relay's published limit
    ("14/second"), kept exactly, with no burst beyond it. Each `delay()` reserves the next
    start and says how long to wait for it."""

    def __init__(self, amount: int, period: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.amount, self.period, self.clock = amount, period, clock
        self._starts: deque[float] = deque(maxlen=amount)  # the last `amount` starts, in order
        self._lock = threading.Lock()  # sends may run on several threads' loops

    def delay(self) -> float:
        with self._lock:
            now = self.clock()
            start = now
            if len(self._starts) == self.amount:
                start = max(now, self._starts[0] + self.period)
            self._starts.append(start)
            return start - now


@functools.cache
def pace(host: str, port: int, rate: str) -> Pace:
    """One `Pace` per server and rate in a process: the sends of successive passes share it."""
    limit = parse_rate(rate)
    return Pace(limit.amount, limit.get_expiry())


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
        delay = pace(smtp.host, smtp.port, smtp.rate).delay if smtp.rate else None
        lost = "connection lost"
        per_connection = smtp.messages_per_connection or len(messages)  # 0: no limit

        async def connected() -> aiosmtplib.SMTP | str:
            connection = self._client()
            try:
                await connection.connect()
                if connection.is_ehlo_or_helo_needed:  # no TLS, no login: nothing said yet
                    try:
                        await connection.ehlo()  # what the server offers (PIPELINING?)
                    except aiosmtplib.SMTPHeloError:
                        await connection.helo()
            except Exception as e:  # a refusal, a timeout, a bad certificate: all retried
                return f"cannot reach {smtp.host}:{smtp.port}: {e}"
            return connection

        async def work(connection: aiosmtplib.SMTP) -> None:
            nonlocal lost
            while True:
                taken = 0

                def take() -> Outgoing | None:
                    nonlocal taken
                    if not waiting or taken == per_connection:
                        return None
                    taken += 1
                    return waiting.popleft()

                if not connection.is_connected:  # lost since it was opened
                    return
                if pipelining.offered(connection):
                    ended = await pipelining.Pipeline(
                        connection, sender=self.sender, host=smtp.host,
                        timeout=smtp.timeout).send(take, results, delay)
                else:
                    ended = await self._lock_step(connection, take, results, delay)
                if not ended or not waiting:
                    return
                again = await connected()  # after messages_per_connection
                if isinstance(again, str):
                    lost = again
                    return
                connection = again

        if not messages:
            return []
        count = max(1, min(smtp.connections, len(messages)))
        clients = await asyncio.gather(*(connected() for _ in range(count)))
        working = [c for c in clients if not isinstance(c, str)]
        if not working:
            why = str(clients[0])
            for m in messages:
                results.append(Result(key=m.message_id, recipient=m.recipient, error=why,
                                      unreachable=True))
            return list(results)
        await asyncio.gather(*(work(c) for c in working))
        for m in waiting:  # every connection was lost before these
            results.append(Result(key=m.message_id, recipient=m.recipient, error=lost,
                                  unreachable=True))
        return list(results)

    async def _lock_step(self, connection: aiosmtplib.SMTP, take: Callable[[], Outgoing | None],
                         results: Results, delay: Callable[[], float] | None) -> bool:
        """aiosmtplib's way, for a server without PIPELINING: a round trip a command. True
        when the session ended with QUIT, False when the connection was lost."""
        try:
            while (message := take()) is not None:
                if delay is not None and (wait := delay()) > 0:
                    await asyncio.sleep(wait)
                results.append(await self._send_one(connection, message))
                if not connection.is_connected:
                    return False
        finally:
            try:
                await connection.quit()
            except (aiosmtplib.SMTPException, OSError):
                connection.close()
        return True

    async def _send_one(self, connection: aiosmtplib.SMTP, message: Outgoing) -> Result:
        key, recipient, host = message.message_id, message.recipient, self.smtp.host
        beyond_ascii = [a for a in (recipient, self.sender) if addresses.needs_smtputf8(a)]
        try:
            refused, _ = await connection.sendmail(
                self.sender, [recipient], message.data,
                mail_options=["SMTPUTF8"] if beyond_ascii else [])
        except aiosmtplib.SMTPNotSupported:  # raised before anything is sent: the session is fine
            return pipelining.no_smtputf8(message, host,
                                          beyond_ascii[0] if beyond_ascii else recipient)
        except aiosmtplib.SMTPRecipientsRefused as e:  # every recipient was refused
            first = e.recipients[0]
            return pipelining.answered(message, first.code, first.message, unusable=True)
        except aiosmtplib.SMTPResponseException as e:
            return pipelining.answered(message, e.code, e.message)
        except (aiosmtplib.SMTPException, OSError) as e:  # timed out, cut: the server's
            return Result(key=key, recipient=recipient, error=str(e) or "connection lost",
                          unreachable=True)
        except Exception as e:  # this message cannot be sent, whatever else can
            log.warning("mail %s to %s cannot be sent: %s", key, recipient, reason(e))
            try:  # the next message starts from a clean session, or on another connection
                await connection.rset()
            except Exception:
                connection.close()
            return Result(key=key, recipient=recipient, error=reason(e), permanent=True)
        if refused:
            code, text = next(iter(refused.values()))
            return pipelining.answered(message, code, text, unusable=True)
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
