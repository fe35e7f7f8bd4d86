"""SMTP with PIPELINING (RFC 2920): a round trip a message, each message once, its result right.

Against a scripted server written here (it can split replies, answer 4xx and 5xx where told,
close or go silent mid-pipeline, and hold its replies until a group ends, which a client that
waits for each reply never sees), against aiosmtpd told to offer PIPELINING (STARTTLS, TLS,
AUTH), and against Postfix's smtp-sink where it is installed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from scheduler import config
from scheduler.channels import Result
from scheduler.channels.mail import Outgoing
from scheduler.channels.pipelining import Replies, Reply, content, mailbox, normalized
from scheduler.channels.smtp import Pace, Smtp
from scheduler.config import SmtpSettings
from scheduler.errors import ConfigError
from tests.conftest import Coalition, free_port, use_smtp

SENDER = "calls@example.org"
SMTP_SINK = Path("/usr/sbin/smtp-sink")
BODIES = [  # what a member must receive byte for byte, whatever the wire did to it
    b"Subject: plain\r\n\r\nThe call starts in 30 minutes.\r\n",
    b"Subject: dots\r\n\r\n.a line that starts with a dot\r\n..and two\r\n.\r\nend\r\n",
    b"Subject: lone line feeds\n\nno carriage return\nand no final newline",
    "Subject: accents\r\n\r\nL’appel commence à 15 h.\r\n".encode(),
    b".Subject: a dot first\r\n\r\n",
]


def message(number: int, recipient: str | None = None) -> Outgoing:
    return Outgoing(message_id=f"<m{number}@example.org>",
                    recipient=recipient or f"member{number}@example.org",
                    data=BODIES[number % len(BODIES)] + b"number %d\r\n" % number)


def batch(count: int) -> list[Outgoing]:
    return [message(n) for n in range(count)]


def arrived(m: Outgoing) -> bytes:
    """What the server must hold for `m`: its lines, CRLF, undone dot-stuffing."""
    return normalized(m.data)


def smtp_settings(port: int, **changes: Any) -> SmtpSettings:
    """config.toml's defaults, with the test server's port and `changes`."""
    defaults = config.parse({}, Path("config.toml")).smtp
    return dataclasses.replace(defaults, port=port, **changes)


# --- a scripted server


@dataclass(kw_only=True)
class Script:
    """What the scripted server does. Replies are keyed by recipient."""

    extensions: tuple[str, ...] = ("PIPELINING", "SIZE 10240000", "8BITMIME")
    mail: str = "250 2.1.0 Ok"
    rcpt: dict[str, str] = field(default_factory=dict)
    after_content: dict[str, str] = field(default_factory=dict)
    close_after_content: set[str] = field(default_factory=set)  # without a reply
    silent_after_content: set[str] = field(default_factory=set)  # no reply, ever again
    accept_data_anyway: bool = False  # 354 even without a valid recipient
    hold: bool = False  # reply only at the end of a group (DATA, QUIT)
    split: bool = False  # each reply a few bytes at a time
    multiline: bool = False  # each reply on two lines


class Server:
    """Keeps what it accepted (recipient and content), each connection's data as it came, in
    chunks, and how many results the client had handed over when each MAIL arrived."""

    def __init__(self, script: Script, seen: list[Result] | None = None) -> None:
        self.script = script
        self.accepted: list[tuple[str, bytes]] = []
        self.mail_from: list[bytes] = []
        self.chunks: list[list[bytes]] = []  # per connection
        self.sessions: list[list[str]] = []  # per connection, the recipients accepted
        self.seen_at_mail: list[int] = []
        self.seen = seen if seen is not None else []
        self.transports: list[asyncio.Transport] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.get_running_loop().create_server(
            lambda: Session(self), "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for transport in self.transports:
            transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def received(self) -> Counter[str]:
        return Counter(recipient for recipient, _ in self.accepted)


class Session(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server, self.script = server, server.script
        self.buffer = b""
        self.out: list[str] = []
        self.recipient: str | None = None
        self.lines: list[bytes] | None = None  # the content, while it comes
        self.silent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.transports.append(self.transport)
        self.chunks: list[bytes] = []
        self.accepted: list[str] = []
        self.server.chunks.append(self.chunks)
        self.server.sessions.append(self.accepted)
        self.say("220 test ESMTP", flush=True)

    def say(self, reply: str, *, flush: bool = False) -> None:
        if self.script.multiline:
            reply = f"{reply[:3]}-{reply[4:]}\r\n{reply[:3]} (continued)"
        self.out.append(reply + "\r\n")
        if flush or not self.script.hold:
            self.flush()

    def flush(self) -> None:
        data, self.out = "".join(self.out).encode(), []
        if self.silent or self.transport.is_closing():
            return
        pieces = [data[i:i + 3] for i in range(0, len(data), 3)] if self.script.split else [data]
        for piece in pieces:
            self.transport.write(piece)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffer += data
        while b"\n" in self.buffer and not self.transport.is_closing():
            line, _, self.buffer = self.buffer.partition(b"\n")
            self.line(line + b"\n")

    def line(self, line: bytes) -> None:
        if self.lines is not None:
            if line == b".\r\n":
                self.ended()
            else:
                self.lines.append(line[1:] if line.startswith(b".") else line)
            return
        verb, _, argument = line.strip().decode().partition(" ")
        verb = verb.upper()
        if verb == "EHLO":
            self.out.append("250-test\r\n")
            for extension in self.script.extensions:
                self.out.append(f"250-{extension}\r\n")
            self.say("250 HELP", flush=True)
        elif verb == "MAIL":
            self.server.seen_at_mail.append(len(self.server.seen))
            self.server.mail_from.append(line.strip())
            self.say(self.script.mail)
        elif verb == "RCPT":
            address = argument.partition(":")[2].strip("<>")
            reply = self.script.rcpt.get(address, "250 2.1.5 Ok")
            if reply.startswith("250") and self.script.mail.startswith("250"):
                self.recipient = address
            self.say(reply)
        elif verb == "DATA":
            if self.recipient or self.script.accept_data_anyway:
                self.lines = []
                self.say("354 End data with <CR><LF>.<CR><LF>", flush=True)
            else:
                self.say("554 5.5.1 Error: no valid recipients", flush=True)
        elif verb == "RSET":
            self.recipient = None
            self.say("250 2.0.0 Ok")
        elif verb == "QUIT":
            self.say("221 2.0.0 Bye", flush=True)
            self.transport.close()
        else:
            self.say("502 5.5.2 Error: command not recognized")

    def ended(self) -> None:
        assert self.lines is not None
        recipient, data = self.recipient, b"".join(self.lines)
        self.lines, self.recipient = None, None
        if recipient in self.script.close_after_content:
            self.transport.close()
            return
        if recipient in self.script.silent_after_content:
            self.silent = True
            return
        if recipient is None:
            self.say("554 5.5.1 Error: no valid recipients")
            return
        reply = self.script.after_content.get(recipient, "250 2.0.0 Ok: queued")
        if reply.startswith("250"):
            self.server.accepted.append((recipient, data))
            self.accepted.append(recipient)
        self.say(reply)


LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"))]


@pytest.fixture(params=LOOPS)
def event_loop_kind(request: pytest.FixtureRequest) -> str:
    """Both loops the daemon may run on: asyncio's, and uvloop where it is installed."""
    kind: str = request.param
    return kind


def run(kind: str, main: Coroutine[Any, Any, Any]) -> Any:
    if kind == "uvloop":
        import uvloop
        return uvloop.run(main)
    return asyncio.run(main)


Sent = tuple[list[Result], Server]


@pytest.fixture
def send(event_loop_kind: str) -> Callable[..., Sent]:
    """send(script, messages, **settings): the messages through `Smtp` to a scripted server;
    the results in the order on_result was given them, and the server."""

    def sending(script: Script, messages: list[Outgoing], **changes: Any) -> Sent:
        seen: list[Result] = []
        server = Server(script, seen)

        async def main() -> list[Result]:
            port = await server.start()
            try:
                settings = smtp_settings(port, **{"connections": 1, **changes})
                return await Smtp(settings, sender=SENDER).send_async(messages, seen.append)
            finally:
                await server.stop()

        returned = run(event_loop_kind, main())
        assert returned == seen
        return seen, server

    return sending


def by_key(results: list[Result]) -> dict[str, Result]:
    keys = [r.key for r in results]
    assert len(keys) == len(set(keys)), "a message has two results"
    return {r.key: r for r in results}


def ok(m: Outgoing) -> Result:
    return Result(key=m.message_id, recipient=m.recipient, receipt=m.message_id)


def failed(m: Outgoing, error: str, *, permanent: bool = False, unusable: bool = False,
           unreachable: bool = False) -> Result:
    return Result(key=m.message_id, recipient=m.recipient, error=error, permanent=permanent,
                  unusable=unusable, unreachable=unreachable)


# --- what goes on the wire


@pytest.mark.parametrize("data", [*BODIES, b"", b"\r", b"a\r\rb", b"..\n.\r\n."],
                         ids=lambda d: repr(d)[:20])
def test_content_is_byte_for_byte_what_aiosmtplib_sends(data: bytes) -> None:
    assert content(data) == PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + \
        b".\r\n"


@pytest.mark.parametrize("address", ["ada@example.org", "o'neil+calls@mail.example.org",
                                     "Ada <ada@example.org>", '"a b"@example.org'])
def test_addresses_are_quoted_as_aiosmtplib_quotes_them(address: str) -> None:
    assert mailbox(address, "ascii") == quote_address(address).encode()




def test_replies_split_anywhere_and_multiline_are_read_whole_and_in_order() -> None:
    async def main() -> list[Reply]:
        transport = _NoTransport()
        replies = Replies(transport, timeout=5)
        stream = b"250-first\r\n250-second\r\n250 third\r\n354 go ahead\r\n421\r\n"
        for i in range(0, len(stream), 4):
            replies.data_received(stream[i:i + 4])
        return [await replies.reply() for _ in range(3)]

    assert asyncio.run(main()) == [Reply(250, "first\nsecond\nthird"), Reply(354, "go ahead"),
                                   Reply(421, "")]


def test_a_reply_that_is_not_smtp_breaks_the_connection() -> None:
    async def main() -> str:
        transport = _NoTransport()
        replies = Replies(transport, timeout=5)
        replies.data_received(b"HTTP/1.1 400 Bad Request\r\n")
        assert transport.aborted
        try:
            await replies.reply()
        except Exception as e:
            return str(e)
        return "no error"

    assert asyncio.run(main()).startswith("the server's reply is not SMTP")


class _NoTransport(asyncio.WriteTransport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted


# --- against the scripted server


def test_each_message_arrives_once_with_its_exact_bytes(send: Callable[..., Sent]) -> None:
    messages = batch(40)
    results, server = send(Script(), messages, connections=3)
    assert results == [r for r in results if r.ok] and len(results) == 40
    assert sorted(server.accepted) == sorted((m.recipient, arrived(m)) for m in messages)
    assert max(server.received().values()) == 1


def test_each_message_costs_one_round_trip(send: Callable[..., Sent]) -> None:
    """The server replies only once a group ends (after DATA, or QUIT): MAIL, RCPT and DATA
    must come in one go, and the content with the next message's commands. A client that
    waited for each reply would wait forever (here: a second, then fail)."""
    messages = batch(12)
    results, server = send(Script(hold=True), messages, timeout=1)
    assert [r.error for r in results] == [None] * 12
    assert [r for r, _ in server.accepted] == [m.recipient for m in messages]


def test_without_pipelining_each_command_waits_for_its_reply(
        send: Callable[..., Sent]) -> None:
    """A server that does not offer PIPELINING gets aiosmtplib's lock-step: never a second
    command before the reply to the first."""
    messages = batch(5)
    results, server = send(Script(extensions=("SIZE 10240000", "8BITMIME")), messages)
    assert all(r.ok for r in results)
    together = [c for c in server.chunks[0]
                if b"\r\nRCPT TO" in c or b"\r\nDATA\r\n" in c or b".\r\nMAIL FROM" in c]
    assert together == []
    assert sorted(server.accepted) == sorted((m.recipient, arrived(m)) for m in messages)


def test_split_and_multiline_replies_are_matched_in_order(send: Callable[..., Sent]) -> None:
    messages = batch(10)
    script = Script(split=True, multiline=True, rcpt={messages[3].recipient: "550 5.1.1 no"},
                    after_content={messages[6].recipient: "452 4.3.1 full"})
    results, _ = send(script, messages)
    found = by_key(results)
    assert found[messages[3].message_id] == failed(messages[3], "550 5.1.1 no\n(continued)",
                                                   permanent=True, unusable=True)
    assert found[messages[6].message_id] == failed(messages[6], "452 4.3.1 full\n(continued)")
    assert [k for k, r in found.items() if r.ok] == [
        m.message_id for i, m in enumerate(messages) if i not in (3, 6)]


@pytest.mark.parametrize(("reply", "permanent"), [
    pytest.param("550 5.1.1 <x>: Recipient address rejected: User unknown", True, id="5xx"),
    pytest.param("450 4.2.0 <x>: Recipient address rejected: Greylisted", False, id="4xx")])
def test_a_refused_recipient_is_unusable_and_the_others_go(
        send: Callable[..., Sent], reply: str, permanent: bool) -> None:
    messages = batch(6)
    refused = messages[2]
    results, server = send(Script(rcpt={refused.recipient: reply}), messages)
    assert results[2] == failed(refused, reply, permanent=permanent, unusable=True)
    assert [r.ok for r in results] == [True, True, False, True, True, True]
    assert sorted(server.received()) == sorted(m.recipient for m in messages if m is not refused)


@pytest.mark.parametrize(("reply", "permanent"), [
    pytest.param("554 5.7.1 Message rejected: spam", True, id="5xx"),
    pytest.param("451 4.3.0 Temporary failure, try later", False, id="4xx")])
def test_an_answer_after_the_content_is_that_messages_alone(
        send: Callable[..., Sent], reply: str, permanent: bool) -> None:
    messages = batch(6)
    results, server = send(Script(after_content={messages[4].recipient: reply}), messages)
    assert results[4] == failed(messages[4], reply, permanent=permanent)
    assert [r.ok for r in results] == [True, True, True, True, False, True]
    assert server.received() == Counter(m.recipient for i, m in enumerate(messages) if i != 4)


def test_a_refused_sender_fails_each_message_as_the_server_says(
        send: Callable[..., Sent]) -> None:
    messages = batch(3)
    results, server = send(Script(mail="451 4.3.0 Sender temporarily refused"), messages)
    assert results == [failed(m, "451 4.3.0 Sender temporarily refused") for m in messages]
    assert server.accepted == []


def test_data_accepted_after_a_refused_recipient_is_ended_with_a_lone_dot(
        send: Callable[..., Sent]) -> None:
    """RFC 2920 3.1: a server may take DATA though no recipient was accepted; the client
    then sends a lone dot (no content), and the next message is not disturbed."""
    messages = batch(4)
    script = Script(rcpt={messages[1].recipient: "550 5.1.1 unknown"}, accept_data_anyway=True)
    results, server = send(script, messages)
    assert [r.ok for r in results] == [True, False, True, True]
    assert results[1].unusable and results[1].permanent
    assert sorted(server.accepted) == sorted((m.recipient, arrived(m)) for m in messages
                                             if m is not messages[1])


def test_results_are_handed_over_as_each_final_reply_is_read(
        send: Callable[..., Sent]) -> None:
    """When the k-th MAIL reaches the server, every message two places before it has been
    handed to on_result: a crash repeats at most the one message in flight."""
    messages = batch(10)
    _, server = send(Script(), messages)
    assert all(seen >= k - 1 for k, seen in enumerate(server.seen_at_mail)), \
        server.seen_at_mail


def test_a_connection_closed_mid_pipeline_loses_only_what_was_in_flight(
        send: Callable[..., Sent]) -> None:
    """The messages written on it and not yet answered 250 after their content count as not
    sent (temporary); the others go on the other connection, each once."""
    messages = batch(30)
    closer = messages[5]
    results, server = send(Script(close_after_content={closer.recipient}), messages,
                           connections=2)
    found = by_key(results)
    assert len(found) == 30
    lost = [r for r in results if not r.ok]
    assert found[closer.message_id] == failed(closer, "connection lost", unreachable=True)
    assert all(r.error == "connection lost" and not r.permanent for r in lost)
    assert len(lost) <= 2  # the one whose content went, and the one written with it
    assert server.received() == Counter(r.recipient for r in results if r.ok)
    assert sorted(server.accepted) == sorted((m.recipient, arrived(m)) for m in messages
                                             if found[m.message_id].ok)


def test_with_every_connection_closed_the_rest_is_reported_not_sent(
        send: Callable[..., Sent]) -> None:
    messages = batch(10)
    results, server = send(Script(close_after_content={messages[3].recipient}), messages)
    assert [r.ok for r in results] == [True] * 3 + [False] * 7
    assert {r.error for r in results[3:]} == {"connection lost"}
    assert not any(r.permanent for r in results)
    assert server.received() == Counter(m.recipient for m in messages[:3])


def test_a_server_that_stops_answering_fails_what_is_in_flight_after_the_timeout(
        send: Callable[..., Sent]) -> None:
    messages = batch(8)
    results, server = send(Script(silent_after_content={messages[2].recipient}), messages,
                           timeout=1)
    assert [r.ok for r in results] == [True, True] + [False] * 6
    assert results[2] == failed(messages[2], "no reply from the server in 1 s",
                                unreachable=True)
    assert {r.error for r in results[4:]} == {"connection lost"}
    assert server.received() == Counter(m.recipient for m in messages[:2])


def test_messages_per_connection_opens_a_new_connection_after_so_many(
        send: Callable[..., Sent]) -> None:
    messages = batch(10)
    results, server = send(Script(), messages, messages_per_connection=3)
    assert all(r.ok for r in results)
    assert [len(s) for s in server.sessions] == [3, 3, 3, 1]
    assert server.received() == Counter(m.recipient for m in messages)


def test_an_address_that_cannot_go_on_a_command_line_fails_alone(
        send: Callable[..., Sent]) -> None:
    messages = [message(0), message(1, "a b@example.org"), message(2)]
    results, server = send(Script(), messages)
    assert results[1] == failed(messages[1], "ValueError: Address 'a b@example.org' contains "
                                "characters not permitted in an SMTP mailbox", permanent=True)
    assert [r.ok for r in results] == [True, False, True]
    assert server.received() == Counter([messages[0].recipient, messages[2].recipient])


def test_size_is_declared_when_offered(send: Callable[..., Sent]) -> None:
    m = message(1)
    _, server = send(Script(), [m])
    assert server.mail_from == [b"MAIL FROM:<calls@example.org> SIZE=%d" % len(arrived(m))]


ELODIE = "élodie@exemple.fr"


def test_an_address_beyond_ascii_fails_alone_where_smtputf8_is_not_offered(
        send: Callable[..., Sent]) -> None:
    messages = [message(0), message(1, ELODIE), message(2)]
    results, server = send(Script(), messages)
    assert results[1] == failed(
        messages[1], f"the server 127.0.0.1 does not offer SMTPUTF8, which the address "
                     f"{ELODIE} needs", permanent=True, unusable=True)
    assert [r.ok for r in results] == [True, False, True]  # in order, still
    assert server.received() == Counter([messages[0].recipient, messages[2].recipient])


def test_an_address_beyond_ascii_goes_with_smtputf8_where_it_is_offered(
        send: Callable[..., Sent]) -> None:
    messages = [message(0), message(1, ELODIE), message(2)]
    script = Script(extensions=("PIPELINING", "SMTPUTF8"))
    results, server = send(script, messages)
    assert all(r.ok for r in results)
    assert server.mail_from == [b"MAIL FROM:<calls@example.org>",
                                b"MAIL FROM:<calls@example.org> SMTPUTF8",
                                b"MAIL FROM:<calls@example.org>"]
    assert server.received()[ELODIE] == 1


def test_rate_spaces_transactions_over_every_connection_of_the_process() -> None:
    """"14/second": at most 14 starts in any second, with no burst beyond them."""
    now = [100.0]
    pace = Pace(14, 1.0, clock=lambda: now[0])
    delays = [pace.delay() for _ in range(30)]
    assert delays == [0.0] * 14 + [1.0] * 14 + [2.0] * 2
    now[0] = 103.5  # a while later: the window has passed
    assert pace.delay() == 0.0


def test_rate_and_messages_per_connection_are_checked_in_config() -> None:
    bad = {"email": {"smtp": {"rate": "fast", "messages_per_connection": -1}}}
    with pytest.raises(ConfigError) as raised:
        config.parse(bad, Path("config.toml"))
    assert "[email.smtp] rate: 'fast' is not a rate" in str(raised.value)
    assert "[email.smtp] messages_per_connection" in str(raised.value)
    good = {"email": {"smtp": {"rate": "14/second", "messages_per_connection": 100}}}
    smtp = config.parse(good, Path("config.toml")).smtp
    assert (smtp.rate, smtp.messages_per_connection) == ("14/second", 100)


def test_a_rate_lets_everything_through_in_the_end(send: Callable[..., Sent]) -> None:
    messages = batch(20)
    results, server = send(Script(), messages, connections=2, rate="1000/second")
    assert all(r.ok for r in results)
    assert server.received() == Counter(m.recipient for m in messages)


@contextmanager
def scripted_server(script: Script) -> Iterator[tuple[Server, int]]:
    """The scripted server on a loop of its own, for code that runs its own (the CLI)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = Server(script)
    try:
        yield server, asyncio.run_coroutine_threadsafe(server.start(), loop).result()
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def test_run_once_sends_a_reminder_pipelined(
        organizer: Callable[[str], Coalition]) -> None:
    """`[email] transport = "smtp"`: the sending pass pipelines where it is offered (the server
    holds its replies until a group ends), SMTPUTF8 included, and records each as sent."""
    members = organizer("issue_13")
    script = Script(hold=True, extensions=("PIPELINING", "8BITMIME", "SMTPUTF8"))
    with scripted_server(script) as (server, port):
        use_smtp(members.config, port)
        members.config.write_text(members.config.read_text().replace("timeout = 30",
                                                                     "timeout = 5"))
        ran = members("run-once", "--now", "2018-11-06T15:00:30Z")
    assert ran.exit_code == 0, ran.stderr
    assert server.received() == Counter(["ada@example.org", "bea@example.org",
                                         "carl@example.org", "dina@example.org", ELODIE])
    assert {d["status"] for d in members.deliveries()} == {"sent"}


# --- against aiosmtpd, told to offer PIPELINING: STARTTLS, TLS and AUTH as today


class PipeliningSink:
    """aiosmtpd's handler: offers PIPELINING (aiosmtpd reads pipelined commands in order; it
    just does not say so) and keeps each message's exact bytes."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, bytes]] = []

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for recipient in envelope.rcpt_tos:
            self.accepted.append((recipient, bytes(envelope.original_content)))
        return "250 Message accepted"


@pytest.fixture
def authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return ca


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"ada", b"s3cret")
    return AuthResult(success=good)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["none", "starttls", "tls"])
def test_pipelining_over_aiosmtpd_with_starttls_tls_and_login(
        security: str, authority: trustme.CA, event_loop_kind: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    handler, port = PipeliningSink(), free_port()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    tls: dict[str, Any] = {"none": {}, "starttls": {"tls_context": context,
                                                    "require_starttls": True},
                           # aiosmtpd offers AUTH on implicit TLS only when told it may
                           "tls": {"ssl_context": context, "auth_require_tls": False}}[security]
    login: dict[str, Any] = {} if security == "none" else {"authenticator": authenticate,
                                                           "auth_required": True}
    controller = Controller(handler, hostname="127.0.0.1", port=port, **tls, **login)
    monkeypatch.setenv("COALITION_SMTP_PASSWORD", "s3cret")
    settings = smtp_settings(port, security=security, connections=2,
                             username="" if security == "none" else "ada")
    messages = batch(25)
    controller.start()
    try:
        results = run(event_loop_kind, Smtp(settings, sender=SENDER).send_async(messages))
    finally:
        controller.stop()
    assert [r.error for r in results] == [None] * 25
    assert sorted(handler.accepted) == sorted((m.recipient, arrived(m)) for m in messages)


# --- against Postfix's smtp-sink


@pytest.fixture
def postfix_sink() -> Iterator[Callable[..., tuple[int, Path]]]:
    """start(*options): Postfix's smtp-sink on a free port, writing each message it takes to
    a file of its own in the folder returned. Skips where it is not installed, unless
    COALITION_REQUIRE_SMTP_SINK=1 (set by .ci/run) makes that a failure."""
    if not SMTP_SINK.exists():
        reason = f"no {SMTP_SINK} (Debian: apt-get install postfix; `make test` does)"
        if os.environ.get("COALITION_REQUIRE_SMTP_SINK") == "1":
            pytest.fail(f"{reason}; COALITION_REQUIRE_SMTP_SINK=1 requires it")
        pytest.skip(reason)
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(*options: str) -> tuple[int, Path]:
        folder = Path(tempfile.mkdtemp(prefix="coalition-smtp-sink-"))
        folder.chmod(0o777)  # as root, smtp-sink writes as nobody
        port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        process = subprocess.Popen([str(SMTP_SINK), *user, "-d", f"{folder}/m.", *options,
                                    f"127.0.0.1:{port}", "64"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append((process, folder))
        deadline = time.monotonic() + 30
        while True:  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
        return port, folder

    yield start
    for process, folder in started:
        process.terminate()
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def dumped(folder: Path) -> list[tuple[str, bytes]]:
    """Each message smtp-sink took: its recipient and content (smtp-sink writes lines with
    LF, after its own headers and Received, and a blank line after the message)."""
    found = []
    for path in folder.iterdir():
        text = path.read_bytes()
        head, _, rest = text.partition(b"\nReceived: ")
        recipient = head.partition(b"X-Rcpt-Args: <")[2].partition(b">")[0].decode()
        lines = rest.split(b"\n")[1:]
        while lines[0].startswith(b"\t"):
            lines.pop(0)
        found.append((recipient, b"\n".join(lines).removesuffix(b"\n")))
    return found


def test_smtp_sink_takes_every_message_once_with_its_exact_bytes(
        postfix_sink: Callable[..., tuple[int, Path]]) -> None:
    port, folder = postfix_sink()
    messages = batch(500)
    results = Smtp(smtp_settings(port), sender=SENDER).send(messages)
    assert [r.error for r in results if not r.ok] == []
    assert len(by_key(results)) == 500
    assert sorted(dumped(folder)) == sorted(
        (m.recipient, arrived(m).replace(b"\r\n", b"\n")) for m in messages)


@pytest.mark.parametrize(("option", "error", "permanent", "unusable"), [
    pytest.param("-r", "450 4.3.0 Error: command failed", False, True, id="rcpt-4xx"),
    pytest.param("-f", "500 5.3.0 Error: command failed", True, True, id="rcpt-5xx")])
def test_smtp_sink_refusing_recipients_fails_each_message_alone(
        postfix_sink: Callable[..., tuple[int, Path]], option: str, error: str,
        permanent: bool, unusable: bool) -> None:
    """With -r/-f smtp-sink also stops offering PIPELINING: the lock-step path answers the
    same way."""
    port, folder = postfix_sink(option, "RCPT")
    messages = batch(20)
    results = Smtp(smtp_settings(port), sender=SENDER).send(messages)
    assert by_key(results) == {m.message_id: failed(m, error, permanent=permanent,
                                                    unusable=unusable) for m in messages}
    assert list(folder.iterdir()) == []


def test_smtp_sink_closing_after_each_content_loses_only_what_was_in_flight(
        postfix_sink: Callable[..., tuple[int, Path]]) -> None:
    """-Q .: after each message's content, 421 and a closed connection. The first message on
    each connection is answered 421 (temporary); the rest is reported not sent."""
    port, folder = postfix_sink("-Q", ".")
    messages = batch(12)
    results = Smtp(smtp_settings(port), sender=SENDER).send(messages)
    assert len(by_key(results)) == 12 and not any(r.ok or r.permanent for r in results)
    answered = [r for r in results if r.error and r.error.startswith("421")]
    assert len(answered) == 4  # one per connection
    assert {r.error for r in results} - {a.error for a in answered} == {"connection lost"}
    assert sorted(recipient for recipient, _ in dumped(folder)) == sorted(
        r.recipient for r in answered)  # what it took before its 421, and nothing else

