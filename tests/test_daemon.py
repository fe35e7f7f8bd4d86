"""The daemon as it runs in production: a real process, a real SMTP server, real signals."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlmodel import Session

from scheduler import config, daemon
from scheduler.store import calls, db, subscribers
from scheduler.store.recorder import Recorder
from tests.conftest import (
    REQUIRE_POSTGRES,
    ConfigCase,
    SmtpSink,
    free_port,
    read_maildir,
    use_smtp,
)
from tests.daemon_process import start, stop

EARLIER = timedelta(hours=2)


LEASE = timedelta(hours=1)  # far beyond any wait here: dead claims must be taken over
TAKEOVER_WAIT = 300  # seconds: a bound for the test to end, not a measure of the takeover


def service(config_case: ConfigCase, port: int, members: int) -> Path:
    """A service with a call 20 minutes from now, whose "starts in 30 minutes" reminder is due,
    and `members` subscribers who joined two hours ago (so the day-before reminder, valid then
    and never sent, is recorded as missed); mail through the test SMTP server. The lease is an
    hour: a test that kills a daemon can only finish if its claims are taken over."""
    path: Path = config_case("example", f"service-{members}")
    use_smtp(path, port)
    path.write_text(path.read_text().replace("interval_seconds = 60", "interval_seconds = 1"))
    path.write_text(path.read_text().replace(
        "lease_seconds = 120", f"lease_seconds = {int(LEASE.total_seconds())}"))
    settings = config.load(path)
    engine = db.open_database(settings.database_url())
    now = datetime.now(UTC)
    with Session(engine) as session:
        start = (now + timedelta(minutes=20)).strftime("%Y-%m-%d %H:%M")
        calls.add_call(session, settings, calls.CallInput(title="Soon call", start=start,
                                                          timezone="UTC"), now=now - EARLIER)
        for number in range(members):
            subscribers.add(session, settings, subscribers.NewSubscriber(
                email=f"member{number}@example.org"), now=now - EARLIER, commit=False)
        session.commit()
    engine.dispose()
    return path


def window(path: Path) -> int:
    """The documented repeat window after a crash: a message in flight on each connection,
    and the results accepted but still waiting to be recorded."""
    return config.load(path).smtp.connections + Recorder.WAITING


def outbox(path: Path) -> list[dict[str, Any]]:
    command = shutil.which("coalition", path=str(Path(sys.executable).parent))
    assert command
    ran = subprocess.run([command, "--config", str(path), "deliveries", "--json"],
                         capture_output=True, text=True, check=True)
    rows: list[dict[str, Any]] = json.loads(ran.stdout)
    return rows


@pytest.fixture
def sink() -> Iterator[tuple[SmtpSink, int]]:
    from aiosmtpd.controller import Controller

    handler = SmtpSink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    handler.release()
    controller.stop()


def test_daemon_sends_what_is_due_then_stops_cleanly(
        config_case: ConfigCase, sink: tuple[SmtpSink, int]) -> None:
    handler, port = sink
    path = service(config_case, port, members=3)
    handler.expected = {f"member{n}@example.org" for n in range(3)}
    process = start(path)
    try:
        assert handler.all_in.wait(timeout=60), "the daemon sent nothing"
    finally:
        assert stop(process) == 0
    assert sorted(handler.recipients()) == sorted(handler.expected)
    # the call is 19 to 20 minutes away when the daemon sends: it says so, not "30 minutes"
    assert re.fullmatch(r"Soon call starts in (19|20) minutes", str(handler.received[0]["Subject"]))
    emails = [d for d in outbox(path) if d["channel"] == "email" and d["rule"] == "starts-soon"]
    assert {d["status"] for d in emails} == {"sent"} and len(emails) == 3


@pytest.mark.fault
def test_killed_mid_fan_out_then_restarted_every_member_gets_one_message(
    config_case: ConfigCase, sink: tuple[SmtpSink, int]
) -> None:
    """kill -9 while the 301st of 1,000 messages is in flight. After a restart each member has
    exactly one message, except within the documented window (those in flight, and those
    accepted but not yet recorded), which may come twice with the same Message-ID; the outbox
    says the same as the server. The restarted daemon takes the killed one's claims at once:
    everything is in well before their lease would have run out."""
    handler, port = sink
    members = 1000
    path = service(config_case, port, members=members)
    handler.expected = {f"member{n}@example.org" for n in range(members)}
    handler.hold_after = 300
    first = start(path)
    try:
        assert handler.reached.wait(timeout=120), "the fan-out never reached 300 messages"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    handler.release()  # the message that was in flight lands, unrecorded by the dead daemon
    second = start(path)
    try:
        assert handler.all_in.wait(timeout=TAKEOVER_WAIT), \
            "the dead daemon's claims were not taken over (the lease is an hour)"
    finally:
        assert stop(second) == 0
    per_member = Counter(handler.recipients())
    assert set(per_member) == handler.expected
    twice = [m for m, n in per_member.items() if n > 1]
    assert len(twice) <= window(path) and all(per_member[m] == 2 for m in twice)
    for member in twice:
        ids = {str(msg["Message-ID"]) for msg in handler.received
               if member in str(msg["To"])}
        assert len(ids) == 1, "a repeat must carry the same Message-ID"
    emails = [d for d in outbox(path) if d["channel"] == "email" and d["rule"] == "starts-soon"]
    assert len(emails) == members and {d["status"] for d in emails} == {"sent"}


def test_sigterm_in_a_fan_out_lets_the_messages_in_flight_finish(
    config_case: ConfigCase, sink: tuple[SmtpSink, int]
) -> None:
    """Stopping mid-send: the daemon finishes the batch it claimed, then exits 0; nothing is
    left half-done and nothing goes twice."""
    handler, port = sink
    path = service(config_case, port, members=200)
    handler.expected = {f"member{n}@example.org" for n in range(200)}
    handler.hold_after = 50
    process = start(path)
    assert handler.reached.wait(timeout=120)
    process.send_signal(signal.SIGTERM)
    handler.release()
    assert process.wait(timeout=120) == 0
    assert sorted(Counter(handler.recipients()).values()) == [1] * 200
    assert {d["status"] for d in outbox(path)
            if d["channel"] == "email" and d["rule"] == "starts-soon"} == {"sent"}


def test_a_template_edited_while_the_daemon_runs_is_used_from_the_next_batch(
        config_case: ConfigCase) -> None:
    """The daemon compiles its templates once an interval, not for every batch of a fan-out;
    a template file edited in between is read again all the same."""
    path: Path = config_case("example", "edited-template")
    wording = path.parent / "own" / "email" / "starts-soon.en.txt"
    wording.parent.mkdir(parents=True)
    wording.write_text("{% block subject %}First wording{% endblock %}\n"
                       "{% block body %}Hello{% endblock %}\n")
    text = path.read_text().replace("batch = 500", "batch = 1")  # a pass per delivery
    path.write_text(text.replace('folder = ""', 'folder = "own"', 1))
    settings = config.load(path)
    engine = db.open_database(settings.database_url())
    start = datetime(2030, 1, 8, 15, tzinfo=UTC)
    with Session(engine) as session:
        calls.add_call(session, settings, calls.CallInput(
            title="Weekly", start="2030-01-08 15:00", timezone="UTC"),
            now=start - timedelta(days=30))
        for name in ("ada", "bea"):
            subscribers.add(session, settings, subscribers.NewSubscriber(
                email=f"{name}@example.org", language="en"), now=start - timedelta(days=30))
    reminders = daemon.Reminders(settings, engine, AsyncIOScheduler(timezone=UTC), "test")
    subjects: list[str] = []
    with time_machine.travel(start - timedelta(minutes=30), tick=False):  # one interval
        for _ in range(5):  # the two emails and the forum post, in some order
            reminders._pass()
            subjects = [str(m["Subject"]) for m in read_maildir(settings.maildir)]
            if subjects == ["First wording"]:
                wording.write_text(wording.read_text().replace("First", "Second"))
                later = wording.stat().st_mtime + 2  # as an edit a moment later would
                os.utime(wording, (later, later))
    assert sorted(subjects) == ["First wording", "Second wording"]
    engine.dispose()


def test_daemon_refuses_to_start_with_a_broken_template(config_case: ConfigCase) -> None:
    path: Path = config_case("example", "broken")
    shutil.copytree(Path(__file__).parent / "data" / "templates" / "misspelled",
                    path.parent / "mine")
    path.write_text(path.read_text().replace('folder = ""', 'folder = "mine"'))
    command = shutil.which("coalition", path=str(Path(sys.executable).parent))
    assert command
    ran = subprocess.run([command, "--config", str(path), "daemon", "--port", "0"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 2
    assert "mine/forum/tomorrow.fr.md line 2:" in ran.stderr


def test_second_daemon_on_one_sqlite_file_is_refused(config_case: ConfigCase) -> None:
    path: Path = config_case("example", "one-sqlite")
    first = start(path)
    try:
        command = shutil.which("coalition", path=str(Path(sys.executable).parent))
        assert command
        second = subprocess.run([command, "--config", str(path), "daemon", "--port", "0"],
                                capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 2
        assert f"another daemon (pid {first.pid}) is running on" in second.stderr
        assert "run several on PostgreSQL" in second.stderr
    finally:
        assert stop(first) == 0
    again = start(path)  # the lock went with the first daemon
    assert stop(again) == 0


@pytest.mark.postgres
@pytest.mark.fault
def test_two_replicas_on_postgresql_one_killed_each_member_gets_one_message(
    config_case: ConfigCase, sink: tuple[SmtpSink, int], postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two daemons share one PostgreSQL database and the fan-out (batches of 100, claimed with
    SKIP LOCKED). One is killed mid-send; the other sees within seconds that it is gone (its
    advisory lock is free) and takes its claims, long before their lease runs out."""
    monkeypatch.setenv("COALITION_DATABASE_URL", postgres_url)
    handler, port = sink
    members = 600
    path = service(config_case, port, members=members)
    path.write_text(path.read_text().replace("batch = 500", "batch = 100"))
    handler.expected = {f"member{n}@example.org" for n in range(members)}
    handler.hold_after = 250
    first, second = start(path), start(path)
    try:
        assert handler.reached.wait(timeout=120), "the fan-out never reached 250 messages"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        handler.release()
        assert handler.all_in.wait(timeout=TAKEOVER_WAIT), \
            "the dead daemon's claims were not taken over (the lease is an hour)"
    finally:
        if first.poll() is None:
            first.kill()
        assert stop(second) == 0
    per_member = Counter(handler.recipients())
    assert set(per_member) == handler.expected
    assert all(count <= 2 for count in per_member.values())
    assert sum(count - 1 for count in per_member.values()) <= window(path)
    # at least 600 - 250 - 100 messages were left beyond the killed replica's batch
    assert any("sent as" in line for line in second.log)
    emails = [d for d in outbox(path) if d["channel"] == "email" and d["rule"] == "starts-soon"]
    assert len(emails) == members and {d["status"] for d in emails} == {"sent"}


@pytest.mark.fault
def test_mail_server_down_for_a_while_then_back_loses_nothing(config_case: ConfigCase) -> None:
    """The daemon starts while nothing listens on the SMTP port; it keeps trying, with backoff,
    and when a server comes up every member gets the reminder, once."""
    from aiosmtpd.controller import Controller

    port = free_port()
    path = service(config_case, port, members=20)
    path.write_text(path.read_text().replace("retry_seconds = 30", "retry_seconds = 1"))
    process = start(path)
    try:
        assert process.wait_for_line("cannot reach 127.0.0.1", timeout=60), process.log
        assert process.poll() is None
        handler = SmtpSink()
        handler.expected = {f"member{n}@example.org" for n in range(20)}
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            assert handler.all_in.wait(timeout=120), "the retries never delivered"
        finally:
            controller.stop()
    finally:
        assert stop(process) == 0
    assert sorted(Counter(handler.recipients()).values()) == [1] * 20
    assert {d["status"] for d in outbox(path)
            if d["channel"] == "email" and d["rule"] == "starts-soon"} == {"sent"}


def test_daemon_picks_up_a_change_made_elsewhere_in_its_feeds(config_case: ConfigCase,
                                                             tmp_path: Path) -> None:
    """A replica's feeds follow changes made through another machine's command line."""
    path: Path = config_case("example", "replica")
    path.write_text(path.read_text().replace("interval_seconds = 60", "interval_seconds = 1"))
    process = start(path)
    try:
        settings = config.load(path)
        engine = db.open_database(settings.database_url())
        with Session(engine) as session:  # "another machine": straight into the database
            calls.add_call(session, settings, calls.CallInput(
                title="Made elsewhere", start="2030-01-08 10:00", timezone="UTC"),
                now=datetime.now(UTC))
        engine.dispose()
        assert process.wait_for_line("made-elsewhere.ics", timeout=60), process.log
        assert "Made elsewhere" in (path.parent / "calendars" / "all.ics").read_text()
    finally:
        assert stop(process) == 0


def restart_postgresql() -> None:
    """Restart the machine's PostgreSQL server, as .ci/run's notes say to start it."""
    clusters = sorted(Path("/etc/postgresql").glob("*/main"))
    if shutil.which("pg_ctlcluster") is None or not clusters or os.geteuid() != 0:
        reason = "cannot restart PostgreSQL here (needs pg_ctlcluster and root)"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{reason}; COALITION_REQUIRE_POSTGRES=1 requires it")
        pytest.skip(reason)
    version = clusters[-1].parent.name
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                   check=True, capture_output=True, timeout=120)


@pytest.mark.postgres
@pytest.mark.fault
def test_database_restarted_mid_fan_out_loses_nothing(
    config_case: ConfigCase, sink: tuple[SmtpSink, int], postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL restarts while a message is in flight: the daemon cannot record it, its pass
    fails, the next pass reconnects, and every member gets the reminder (one at most twice,
    with the same Message-ID)."""
    monkeypatch.setenv("COALITION_DATABASE_URL", postgres_url)
    handler, port = sink
    members = 200
    path = service(config_case, port, members=members)
    handler.expected = {f"member{n}@example.org" for n in range(members)}
    handler.hold_after = 80
    process = start(path)
    try:
        assert handler.reached.wait(timeout=120)
        restart_postgresql()
        handler.release()
        assert handler.all_in.wait(timeout=180), "not every member got the reminder"
    finally:
        assert stop(process) == 0
    per_member = Counter(handler.recipients())
    assert set(per_member) == handler.expected
    assert all(count <= 2 for count in per_member.values())
    assert sum(count - 1 for count in per_member.values()) <= window(path)
    emails = [d for d in outbox(path) if d["channel"] == "email" and d["rule"] == "starts-soon"]
    assert {d["status"] for d in emails} == {"sent"}


LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def faked_clock(offset_file: Path) -> dict[str, str]:
    """libfaketime (Debian's faketime) moves the daemon's wall clock by the offset in the file,
    read again on every call; its monotonic clock is left alone, as a suspend leaves it."""
    if not LIBFAKETIME.exists():
        reason = f"no libfaketime at {LIBFAKETIME} (`make test` installs Debian's faketime)"
        if os.environ.get("COALITION_REQUIRE_FAKETIME") == "1":
            pytest.fail(f"{reason}; COALITION_REQUIRE_FAKETIME=1 requires it")
        pytest.skip(reason)
    offset_file.write_text("+0s\n")
    return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(offset_file),
            "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@pytest.mark.fault
@pytest.mark.parametrize(("jump", "starts_soon"), [
    (timedelta(minutes=40), "sent"),    # woke after the reminder fell due, before the call
    (timedelta(minutes=70), "missed"),  # woke after the call began: too late to remind
])
def test_clock_jumping_forward_an_hour_sends_what_is_still_valid_once(
        config_case: ConfigCase, sink: tuple[SmtpSink, int], tmp_path: Path, jump: timedelta,
        starts_soon: str) -> None:
    """A laptop-like suspend: the daemon is stopped (SIGSTOP), its wall clock jumps forward,
    it is resumed (SIGCONT). It must notice at once, send "starts in ..." only while it is
    still true, record it as missed otherwise, and never send anything twice."""
    handler, port = sink
    members = 20
    path: Path = config_case("example", "jump")
    use_smtp(path, port)
    path.write_text(path.read_text().replace("interval_seconds = 60", "interval_seconds = 1"))
    settings = config.load(path)
    engine = db.open_database(settings.database_url())
    now = datetime.now(UTC)
    call_start = now + timedelta(minutes=60)
    with Session(engine) as session:
        calls.add_call(session, settings, calls.CallInput(
            title="Call in an hour", start=call_start.strftime("%Y-%m-%d %H:%M"),
            timezone="UTC"), now=now - EARLIER)
        for number in range(members):
            subscribers.add(session, settings, subscribers.NewSubscriber(
                email=f"member{number}@example.org"), now=now - EARLIER, commit=False)
        session.commit()
    engine.dispose()
    offset = tmp_path / "clock-offset"
    expected = {f"member{n}@example.org" for n in range(members)}
    handler.expected = expected
    process = start(path, env=faked_clock(offset))
    try:
        # "tomorrow" is still valid (until "starts in 30 minutes" is due): it goes at once
        assert handler.all_in.wait(timeout=60), "the day-before reminder never came"
        assert process.wait_for_line("pass at", timeout=60), process.log
        process.send_signal(signal.SIGSTOP)
        offset.write_text(f"+{int(jump.total_seconds())}s\n")
        passes = sum("pass at" in line for line in process.log)
        process.send_signal(signal.SIGCONT)
        woke = process.wait_for(lambda log: any(
            "pass at" in line and _pass_time(line) >= now + jump for line in log[passes:]),
            timeout=60)
        assert woke, process.log
    finally:
        assert stop(process) == 0
    per_member = Counter(handler.recipients())
    emails = [d for d in outbox(path) if d["channel"] == "email"]
    status = {(d["rule"], d["recipient"]): d["status"] for d in emails}
    assert {s for (rule, _), s in status.items() if rule == "tomorrow"} == {"sent"}
    assert {s for (rule, _), s in status.items() if rule == "starts-soon"} == {starts_soon}
    assert per_member == dict.fromkeys(expected, 2 if starts_soon == "sent" else 1)
    assert sum(per_member.values()) == sum(d["status"] == "sent" for d in emails)
    subjects = [str(m["Subject"]) for m in handler.received]
    # each says the distance as it was when sent, as a person says it: an hour, then twenty
    # minutes or less
    assert sum(s.startswith("In an hour: Call in an hour at ") for s in subjects) == members
    soon = [s for s in subjects if s.startswith("Call in an hour starts in")]
    assert len(soon) == (members if starts_soon == "sent" else 0)
    assert all(re.fullmatch(r"Call in an hour starts in (1\d|20) minutes", s) for s in soon)


def _pass_time(line: str) -> datetime:
    found = re.search(r"pass at (\S+): planned", line)
    return datetime.fromisoformat(found.group(1)) if found else datetime.min.replace(tzinfo=UTC)
