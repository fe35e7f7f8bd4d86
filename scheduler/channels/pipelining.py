"""SMTP transactions pipelined (RFC 2920) on a connection aiosmtplib opened.

aiosmtplib connects, says EHLO, starts TLS and logs in, for every server. When the server's
EHLO offers PIPELINING, `Pipeline` takes the connection over (`Replies` becomes the transport's
protocol) and a message costs one round trip instead of four: MAIL FROM, RCPT TO and DATA go
in one write, and after the 354 the content (CRLF line endings, dot-stuffed, ending with
CRLF.CRLF) goes together with the next message's MAIL, RCPT and DATA. aiosmtplib cannot do this
itself: its protocol keeps the reply of the one command being awaited and drops any other.

Replies are matched to commands in order, and a message's outcome is read from them as
`smtp.Smtp` reads aiosmtplib's: 4xx temporary, 5xx permanent, a refused recipient unusable,
the error "CODE text". After a failed transaction an RSET follows (a lone dot first, should the
server have accepted DATA anyway: RFC 2920, 3.1). A lost connection, a reply that is not SMTP,
or no reply within the timeout ends the pipeline: the messages in flight on it (written, and
not yet answered 250 after their content) fail as temporary, and the caller sends the rest
elsewhere. At any moment one message at most has had its content written without its answer,
as in lock-step: a crash repeats no more than it did.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import normalize_message_line_endings

from scheduler.channels import Result, Results
from scheduler.channels.mail import Outgoing
from scheduler.core import addresses
from scheduler.errors import reason

log = logging.getLogger(__name__)

MAX_REPLY = 32 * 1024  # aiosmtplib's bound on one reply, multi-line ones included
LOST = "connection lost"
# An address that `quote_address` (email.utils.parseaddr, then a check) returns as it is.
_PLAIN = re.compile(rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                    rb"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def offered(client: aiosmtplib.SMTP) -> bool:
    return client.supports_extension("pipelining")


def normalized(data: bytes) -> bytes:
    """`data` with lone CR and LF made CRLF and a final CRLF, as aiosmtplib sends it (and
    counts it for SIZE)."""
    lines = data.count(b"\r\n")
    if data.count(b"\n") != lines or data.count(b"\r") != lines:
        return normalize_message_line_endings(data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def stuffed(data: bytes) -> bytes:
    """Normalized `data` as DATA carries it: a dot doubled at the start of a line, then the
    ending dot."""
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def content(data: bytes) -> bytes:
    """What follows the 354 for a message's `data`: byte for byte what aiosmtplib sends."""
    return stuffed(normalized(data))


def mailbox(address: str, encoding: str) -> bytes:
    """<address> for MAIL FROM or RCPT TO, as aiosmtplib quotes it (ValueError for an address
    that cannot go on a command line, UnicodeError for one beyond ASCII without SMTPUTF8)."""
    raw = address.encode(encoding)
    if _PLAIN.fullmatch(raw):
        return b"<" + raw + b">"
    return quote_address(address).encode(encoding)


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class Broken(Exception):
    """No more replies will come on this connection; `str()` says why."""


class Replies(asyncio.Protocol):
    """One connection's replies, parsed as they arrive and taken in order. Each wait for one
    lasts at most `timeout` seconds; then the connection is dropped."""

    def __init__(self, transport: asyncio.WriteTransport, timeout: float) -> None:
        self.transport = transport
        self.timeout = timeout
        self.failure: str | None = None
        self._buffer = bytearray()
        self._lines: list[str] = []  # of a multi-line reply, so far
        self._size = 0
        self._ready: deque[Reply] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        if self.failure is not None:
            return
        buffer = self._buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start:end]).rstrip(b"\r")
            start = end + 1
            code, mark = line[:3], line[3:4]
            if not (len(code) == 3 and code.isdigit() and mark in (b" ", b"-", b"")):
                self._fail(f"the server's reply is not SMTP: {line[:80]!r}", abort=True)
                return
            self._size += len(line)
            self._lines.append(line[4:].strip(b" \t").decode("utf-8", "surrogateescape"))
            if mark != b"-":
                self._ready.append(Reply(int(code), "\n".join(self._lines)))
                self._lines, self._size = [], 0
        del buffer[:start]
        if self._size + len(buffer) > MAX_REPLY:
            self._fail("the server's reply is too long", abort=True)
        elif self._ready:
            self._wake()

    def eof_received(self) -> bool:
        self._fail(LOST)
        return False  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(LOST)

    def write(self, data: bytes) -> None:
        if self.failure is not None or self.transport.is_closing():
            raise Broken(self.failure or LOST)
        self.transport.write(data)

    async def reply(self) -> Reply:
        if not self._ready and self.failure is None:
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(self.timeout, self._fail,
                                          f"no reply from the server in {self.timeout:g} s", True)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self._ready:
            return self._ready.popleft()
        raise Broken(self.failure or LOST)

    def _fail(self, why: str, abort: bool = False) -> None:
        if self.failure is None:
            self.failure = why
            if abort:
                self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Pipeline:
    """The transactions of one connection aiosmtplib has opened (and logged in on), from the
    moment it is taken over to QUIT."""

    def __init__(self, client: aiosmtplib.SMTP, *, sender: str, host: str,
                 timeout: float) -> None:
        transport = client.transport
        if transport is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        self.client, self.sender, self.host = client, sender, host
        self.utf8 = client.supports_extension("smtputf8")
        self.size = client.supports_extension("size")
        self.replies = Replies(cast(asyncio.WriteTransport, transport), timeout)
        transport.set_protocol(self.replies)
        self._from: dict[str, bytes] = {}

    def prepared(self, message: Outgoing) -> tuple[bytes, bytes] | Result:
        """MAIL FROM, RCPT TO and DATA for `message`, and its content; or the result of a
        message that cannot go (nothing is written for it then)."""
        key, recipient = message.message_id, message.recipient
        beyond_ascii = [a for a in (recipient, self.sender) if addresses.needs_smtputf8(a)]
        if beyond_ascii and not self.utf8:
            return no_smtputf8(message, self.host, beyond_ascii[0])
        encoding = "utf-8" if beyond_ascii else "ascii"
        try:
            if encoding not in self._from:
                self._from[encoding] = mailbox(self.sender, encoding)
            to = mailbox(recipient, encoding)
            lines = normalized(message.data)
        except Exception as e:  # an address SMTP cannot carry: this message alone fails
            log.warning("mail %s to %s cannot be sent: %s", key, recipient, reason(e))
            return Result(key=key, recipient=recipient, error=reason(e), permanent=True)
        params = b" SIZE=%d" % len(lines) if self.size else b""  # RFC 1870, as aiosmtplib
        if beyond_ascii:
            params += b" SMTPUTF8"
        return (b"MAIL FROM:%s%s\r\nRCPT TO:%s\r\nDATA\r\n" % (self._from[encoding], params, to),
                stuffed(lines))

    async def send(self, take: Callable[[], Outgoing | None], results: Results,
                   pace: Callable[[], float] | None = None) -> bool:
        """Send each message `take` gives until it gives None, a result each appended to
        `results` in order as soon as its last reply is read. `pace` says how long to wait
        before the next transaction may start. True when the session ended with QUIT; False
        when the connection broke (its messages in flight then failed as temporary)."""
        replies = self.replies
        flight: deque[Outgoing] = deque()  # taken, not yet answered for good, oldest first
        body = b""  # the content of flight[0] once its 354 came, to go with the next write
        skip = 0  # replies to RSET (and a lone dot) owed before the next transaction's
        unsendable: Result | None = None  # its own, given after those in flight before it

        async def delivered() -> None:  # the reply to the content just written
            reply = await replies.reply()
            results.append(self._delivered(flight.popleft(), reply))

        try:
            while (message := take()) is not None:
                prepared = self.prepared(message)
                if isinstance(prepared, Result):
                    unsendable = prepared
                    if body:  # the result before it comes first
                        replies.write(body)
                        body = b""
                        await delivered()
                    unsendable = None
                    results.append(prepared)
                    continue
                flight.append(message)
                if pace is not None and (delay := pace()) > 0:
                    if body:  # no later for waiting
                        replies.write(body)
                        body = b""
                        await delivered()
                    await asyncio.sleep(delay)
                commands, content = prepared
                replies.write(body + commands)
                if body:
                    body = b""
                    await delivered()
                for _ in range(skip):
                    await replies.reply()
                skip = 0
                mail, rcpt, data = (await replies.reply(), await replies.reply(),
                                    await replies.reply())
                refused = self._refused(message, mail, rcpt, data)
                if refused is None:
                    body = content
                    continue
                flight.pop()
                results.append(refused)
                # end the transaction at once; the replies are read with the next ones
                replies.write(b".\r\nRSET\r\n" if data.code == 354 else b"RSET\r\n")
                skip = 2 if data.code == 354 else 1
            replies.write(body + b"QUIT\r\n")
            if body:
                await delivered()
        except Broken as e:
            for message in flight:
                results.append(Result(key=message.message_id, recipient=message.recipient,
                                      error=str(e), unreachable=True))
            if unsendable is not None:
                results.append(unsendable)
            log.info("SMTP connection to %s ended: %s", self.host, e)
            self.client.close()
            return False
        except BaseException:
            self.client.close()
            raise
        try:
            for _ in range(skip + 1):  # and QUIT's: the server may close first, that's fine
                await replies.reply()
        except Broken:
            pass
        self.client.close()
        return True

    def _refused(self, message: Outgoing, mail: Reply, rcpt: Reply, data: Reply
                 ) -> Result | None:
        """The message's result when MAIL, RCPT or DATA was not accepted."""
        if mail.code != 250:
            return _failed(message, mail)
        if rcpt.code not in (250, 251):
            return _failed(message, rcpt, unusable=True)
        if data.code != 354:
            return _failed(message, data)
        return None

    def _delivered(self, message: Outgoing, reply: Reply) -> Result:
        if reply.code != 250:
            return _failed(message, reply)
        log.debug("mail %s to %s accepted by %s", message.message_id, message.recipient,
                  self.host)
        return Result(key=message.message_id, recipient=message.recipient,
                      receipt=message.message_id)


def answered(message: Outgoing, code: int, text: str, *, unusable: bool = False) -> Result:
    """A message the server refused with `code`, on either path (pipelined or lock-step):
    5xx for good, 4xx for now; 421 says the server itself is closing (not serving), and a
    refused recipient is `unusable`."""
    return Result(key=message.message_id, recipient=message.recipient, error=f"{code} {text}",
                  permanent=500 <= code < 600, unusable=unusable, unreachable=code == 421)


def no_smtputf8(message: Outgoing, host: str, address: str) -> Result:
    """An address beyond ASCII, and a server that does not offer SMTPUTF8: for good."""
    return Result(key=message.message_id, recipient=message.recipient, permanent=True,
                  unusable=True, error=f"the server {host} does not offer SMTPUTF8, which the "
                                       f"address {address} needs")


def _failed(message: Outgoing, reply: Reply, *, unusable: bool = False) -> Result:
    return answered(message, reply.code, reply.text, unusable=unusable)
