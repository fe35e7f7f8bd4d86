"""A transport that cannot be reached: its deliveries wait for it on one schedule (backoff with
jitter, for the transport), not each on its own timer, and the first pass that finds it back
sends the whole backlog, batch after batch, rather than one or two at their own retry times.
A failure of one message (a 4xx for its recipient) keeps its own timer. The clock is the
passes' `now`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine
from sqlmodel import Session, select

from scheduler import config
from scheduler.channels import Result
from scheduler.core.plan import EMAIL
from scheduler.delivery import sender
from scheduler.store import calls, db, outbox, subscribers
from scheduler.store.models import Delivery
from tests.conftest import ConfigCase, SmtpSink, free_port, use_smtp

CALL = datetime(2030, 1, 8, 15, tzinfo=UTC)
DUE = CALL - timedelta(minutes=29)  # "starts in 30 minutes" is due, to everyone
MEMBERS = 20
BATCH = 5


@pytest.fixture
def service(config_case: ConfigCase) -> Iterator[tuple[config.Settings, Engine, int]]:
    """A call at 15:00 and 20 members, with mail through an SMTP port where nothing listens
    yet, and batches of 5."""
    path: Path = config_case("example")
    port = free_port()
    use_smtp(path, port)
    path.write_text(path.read_text().replace("batch = 500", f"batch = {BATCH}"))
    settings = config.load(path)
    engine = db.open_database(settings.database_url())
    joined = CALL - timedelta(days=30)
    with Session(engine) as session:
        calls.add_call(session, settings, calls.CallInput(
            title="Call", start="2030-01-08 15:00", timezone="UTC"), now=joined)
        for n in range(MEMBERS):
            subscribers.add(session, settings, subscribers.NewSubscriber(
                email=f"m{n}@example.org"), now=joined, commit=False)
        session.commit()
    yield settings, engine, port
    engine.dispose()


@pytest.fixture
def server() -> Iterator[Callable[[int], SmtpSink]]:
    """Starts the SMTP server on a port when the test says so (it is down until then)."""
    started: list[Controller] = []

    def start(port: int) -> SmtpSink:
        handler = SmtpSink()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        started.append(controller)
        return handler

    yield start
    for controller in started:
        controller.stop()


def run(settings: config.Settings, engine: Engine, now: datetime) -> sender.PassReport:
    with Session(engine, expire_on_commit=False) as session:
        return sender.run_once(session, settings, now=now, worker="test")


def emails(engine: Engine) -> list[Delivery]:
    with Session(engine) as session:
        return list(session.exec(select(Delivery).where(
            Delivery.channel == EMAIL, Delivery.rule == "starts-soon")).all())


def waiting(settings: config.Settings, engine: Engine, now: datetime) -> dict[str, datetime]:
    with Session(engine) as session:
        return outbox.waiting_channels(session, now=now, transports=sender.transports(settings))


def test_the_first_pass_that_finds_the_server_back_sends_the_whole_backlog(
        service: tuple[config.Settings, Engine, int],
        server: Callable[[int], SmtpSink]) -> None:
    settings, engine, port = service
    down = run(settings, engine, DUE)
    # The first batch finds the server down: its emails wait for the transport, and so do
    # those not tried yet; the forum post (another transport) goes all the same.
    assert down.outcomes["to retry"] == len([d for d in emails(engine) if d.attempts])
    assert down.outcomes["sent"] == 1 and down.to_retry <= BATCH
    retry_at = waiting(settings, engine, DUE)[EMAIL]
    assert DUE + timedelta(seconds=15) <= retry_at <= DUE + timedelta(seconds=45)
    assert all(d.next_attempt_at is None for d in emails(engine)), "no timer of their own"
    assert all(str(d.last_error).startswith(f"cannot reach 127.0.0.1:{port}")
               for d in emails(engine) if d.attempts)
    with Session(engine) as session:
        assert outbox.next_wakeup(session, worker="test", waiting=waiting(
            settings, engine, DUE)) == retry_at
    # Before the transport's retry time, a pass tries none of them.
    tried = {d.id: d.attempts for d in emails(engine)}
    assert run(settings, engine, retry_at - timedelta(seconds=1)).outcomes == {}
    assert {d.id: d.attempts for d in emails(engine)} == tried
    # The server is back: the next pass sends all 20, batch after batch.
    sink = server(port)
    back = run(settings, engine, retry_at + timedelta(seconds=1))
    assert back.outcomes == {"sent": MEMBERS}
    assert sorted(sink.recipients()) == sorted(f"m{n}@example.org" for n in range(MEMBERS))
    assert {d.status for d in emails(engine)} == {"sent"}
    assert waiting(settings, engine, retry_at + timedelta(seconds=1)) == {}


def test_an_outage_waits_on_one_doubling_schedule_for_the_transport(
        service: tuple[config.Settings, Engine, int]) -> None:
    """Each pass that still cannot reach the server doubles the transport's wait (30 s, then
    60 s, each times 0.5 to 1.5); the deliveries get no timer of their own."""
    settings, engine, _ = service
    run(settings, engine, DUE)
    first = waiting(settings, engine, DUE)[EMAIL]
    probe = first + timedelta(seconds=1)
    assert run(settings, engine, probe).outcomes == {"to retry": BATCH}
    second = waiting(settings, engine, probe)[EMAIL]
    assert probe + timedelta(seconds=30) <= second <= probe + timedelta(seconds=90)
    assert all(d.next_attempt_at is None for d in emails(engine))
    # the outage is the transport's that config named: another one would not wait for it
    with Session(engine) as session:
        assert outbox.waiting_channels(session, now=probe,
                                       transports={EMAIL: "maildir"}) == {}


def test_a_message_refused_for_now_keeps_its_own_timer_and_the_rest_goes(
        service: tuple[config.Settings, Engine, int],
        server: Callable[[int], SmtpSink]) -> None:
    """A 4xx for one recipient is that message's: it is retried on its own timer, the
    transport is not taken for down, and nobody else waits."""
    settings, engine, port = service
    sink = server(port)
    sink.refuse = {"m3@example.org": "451 4.7.1 greylisted, try again later"}
    report = run(settings, engine, DUE)
    assert report.outcomes == {"sent": MEMBERS, "to retry": 1}  # 19 emails and the post
    (greylisted,) = [d for d in emails(engine) if d.status == "pending"]
    assert greylisted.recipient == "m3@example.org"
    assert greylisted.next_attempt_at is not None
    assert DUE + timedelta(seconds=15) <= greylisted.next_attempt_at <= DUE + timedelta(
        seconds=45)
    assert waiting(settings, engine, DUE) == {}


@pytest.mark.parametrize(("result", "transport"), [
    pytest.param(Result(key="k", error="cannot reach smtp.example.org:587: [Errno 111] "
                        "Connection refused", unreachable=True), True, id="refused"),
    pytest.param(Result(key="k", error="421 4.3.2 Service shutting down", unreachable=True),
                 True, id="smtp-421"),
    pytest.param(Result(key="k", error="451 4.3.0 try again later"), False,
                 id="smtp-451-this-message"),
    pytest.param(Result(key="k", error="450 mailbox busy", unusable=True), False,
                 id="recipient-refused-for-now"),
    pytest.param(Result(key="k", error="429 slow down", retry_after=timedelta(seconds=9),
                        unreachable=True), False, id="retry-after"),
    pytest.param(Result(key="k", error="550 no such user", permanent=True), False,
                 id="permanent"),
    pytest.param(Result(key="k", receipt="k"), False, id="sent"),
])
def test_which_failures_are_the_transports(result: Result, transport: bool) -> None:
    assert sender.outage(result) is transport


class CutsOne(SmtpSink):
    """Drops the connection when one recipient is named, as a broken relay or a message that
    trips a filter does; everyone else is taken."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address == "m3@example.org":
            server.transport.close()
            return "421 4.4.2 closing"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def test_a_message_that_cuts_its_connection_keeps_its_own_timer(
        service: tuple[config.Settings, Engine, int]) -> None:
    """The server took the others, so it was not down: the message that broke its connection
    waits on its own backoff, not for the transport (with no timer, it would go again at
    once, pass after pass), and nobody else waits."""
    settings, engine, port = service
    controller = Controller(CutsOne(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        report = run(settings, engine, DUE)
    finally:
        controller.stop()
    assert report.outcomes["sent"] == MEMBERS  # 19 emails and the post
    (cut,) = [d for d in emails(engine) if d.status == "pending"]
    assert cut.recipient == "m3@example.org"
    assert cut.next_attempt_at is not None
    assert DUE + timedelta(seconds=15) <= cut.next_attempt_at <= DUE + timedelta(seconds=45)
    assert waiting(settings, engine, DUE) == {}


def test_a_forum_that_cannot_be_written_holds_every_post_on_its_schedule(
        service: tuple[config.Settings, Engine, int],
        server: Callable[[int], SmtpSink]) -> None:
    """Two posts, the forum's folder gone (a file in its place): the first finds it down, the
    second waits with it, and the forum's one schedule is recorded, not cleared by the
    second post's failure."""
    settings, engine, port = service
    settings = replace(settings, daemon=replace(settings.daemon, batch=500))  # one batch
    server(port)
    with Session(engine) as session:
        calls.add_call(session, settings, calls.CallInput(
            title="Second call", start="2030-01-08 15:00", timezone="UTC"),
            now=CALL - timedelta(days=30))
    settings.forum_folder.parent.mkdir(parents=True, exist_ok=True)
    settings.forum_folder.write_text("a file where the forum's folder should be")
    run(settings, engine, DUE)
    with Session(engine) as session:
        posts = list(session.exec(select(Delivery).where(
            Delivery.channel == "forum", Delivery.rule == "starts-soon")).all())
    assert len(posts) == 2
    assert all(p.status == "pending" and p.next_attempt_at is None for p in posts)
    assert "forum" in waiting(settings, engine, DUE)
