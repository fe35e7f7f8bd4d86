"""A dead worker's claims are free at once, not when their lease ends. On PostgreSQL each worker
holds an advisory lock named by its id for as long as its process lives; a claim whose
worker's lock can be taken is a dead one's. On SQLite the one daemon frees every older claim
when it starts. The lease (120 s here) stays the last resort; the clock is the claims' `now`."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from scheduler import config, daemon
from scheduler.core.plan import EMAIL, Planned
from scheduler.store import calls, db, outbox
from tests.conftest import ConfigCase

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
LEASE = timedelta(seconds=120)
SOON = NOW + timedelta(seconds=1)  # well within the lease


def queue(engine: Engine, settings: config.Settings, members: int) -> None:
    """`members` deliveries of one reminder, due at NOW."""
    with Session(engine) as session:
        call = calls.add_call(session, settings, calls.CallInput(
            title="Call", start="2026-01-05 13:00", timezone="UTC"), now=NOW)
        assert call.id is not None
        occurrence = datetime(2026, 1, 5, 13, tzinfo=UTC)
        outbox.sync(session, [Planned(call.id, occurrence, "starts-soon", EMAIL,
                                      f"m{n}@example.org", NOW, occurrence)
                              for n in range(members)],
                    covered={(call.id, occurrence, "starts-soon")}, now=NOW)


def claim(engine: Engine, worker: str, *, now: datetime = SOON, limit: int = 500) -> set[str]:
    with Session(engine) as session:
        return {d.recipient for d in outbox.claim(session, now=now, worker=worker,
                                                  lease=LEASE, limit=limit)}


@pytest.fixture
def postgresql(config_case: ConfigCase, postgres_url: str,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one fresh PostgreSQL database, as two daemons' processes would have,
    and four deliveries due."""
    monkeypatch.setenv("COALITION_DATABASE_URL", postgres_url)
    settings = config.load(config_case("example"))
    first, second = (db.open_database(settings.database_url()) for _ in range(2))
    queue(first, settings, 4)
    yield first, second
    for engine, worker in ((first, "first"), (second, "second")):
        outbox.let_go(engine, worker)
        engine.dispose()


def kill_connection_of(engine: Engine, worker: str) -> None:
    """What the server sees of a process killed with -9: the connection that holds the
    worker's lock ends (found by the lock, ended from another connection). The server is
    asked to wait until that backend is gone (PostgreSQL 14 and later), so its lock is
    released when this returns: without it, the next claim could run first."""
    key = outbox._lock_key(worker)
    with engine.connect() as connection:
        ended = connection.execute(text(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND objsubid = 1 AND classid = :high AND objid = :low "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
            {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF}).scalars().all()
        connection.commit()
    assert ended == [True]


@pytest.mark.postgres
def test_a_live_workers_claims_stay_its_own_and_a_dead_ones_are_taken_at_once(
        postgresql: tuple[Engine, Engine]) -> None:
    first, second = postgresql
    taken = claim(first, "first", now=NOW, limit=2)
    assert len(taken) == 2
    # "first" is alive (its lock is held): its claims stay its own, within their lease
    rest = claim(second, "second")
    assert len(rest) == 2 and not rest & taken
    with Session(second) as session:
        assert outbox.others(session, now=SOON, worker="second") == {"first": True}
    outbox.let_go(second, "second")  # "second" ended cleanly: what it held is free too
    kill_connection_of(first, "first")
    # a second later, far from the end of the lease, another worker takes them all
    assert claim(second, "third") == taken | rest


@pytest.mark.postgres
def test_a_worker_whose_lock_connection_was_lost_takes_its_lock_again(
        postgresql: tuple[Engine, Engine]) -> None:
    """As after a restart of the server: the next claim finds the connection gone and takes
    the lock again, so the worker's later claims are not taken for a dead one's."""
    first, second = postgresql
    mine = claim(first, "first", now=NOW, limit=1)
    kill_connection_of(first, "first")
    assert claim(first, "first", limit=1) == mine  # its own again, with its lock
    with Session(second) as session:
        assert outbox.others(session, now=SOON, worker="second") == {"first": True}
    rest = claim(second, "second")
    assert len(rest) == 3 and not rest & mine


def test_a_daemon_starting_on_sqlite_frees_the_claims_an_earlier_one_left(
        config_case: ConfigCase) -> None:
    """The earlier daemon was killed mid-send: on SQLite it can be no other daemon's, so the
    one starting takes them at once rather than after the lease."""
    settings = config.load(config_case("example"))
    engine = db.open_database(settings.database_url())
    queue(engine, settings, 3)
    assert len(claim(engine, "killed", now=NOW)) == 3
    assert claim(engine, "restarted") == set()  # only the lease would free them
    with daemon.only_daemon_on_sqlite(engine):
        assert len(claim(engine, "restarted")) == 3
    engine.dispose()


def test_a_daemon_starting_on_sqlite_leaves_a_running_run_once_its_claims(
        config_case: ConfigCase) -> None:
    """A `run-once` from cron sending as the daemon starts (it takes no daemon lock): its
    claims stay its own, or what it is sending would be sent twice."""
    settings = config.load(config_case("example"))
    engine = db.open_database(settings.database_url())
    queue(engine, settings, 3)
    this_process = f"{socket.gethostname()}:{os.getpid()}"
    assert len(claim(engine, this_process, now=NOW)) == 3
    with daemon.only_daemon_on_sqlite(engine):
        assert claim(engine, "restarted") == set()
    engine.dispose()


@pytest.mark.parametrize(("worker", "alive"), [
    pytest.param(f"{socket.gethostname()}:{os.getpid()}", True, id="this-process"),
    pytest.param(f"{socket.gethostname()}:99999999", False, id="no-such-pid"),
    pytest.param("another-machine:1", False, id="another-machine"),
    pytest.param("killed", False, id="not-host-and-pid")])
def test_which_workers_are_running_here(worker: str, alive: bool) -> None:
    assert daemon.running_here(worker) is alive


def test_a_worker_claiming_again_takes_its_own_claims_back(config_case: ConfigCase) -> None:
    """A worker finishes a batch before it claims the next: a claim of its own still under
    lease is one a pass that stopped midway (the database went away) left, or its process
    before it, under the same id."""
    settings = config.load(config_case("example"))
    engine = db.open_database(settings.database_url())
    queue(engine, settings, 2)
    assert len(claim(engine, "host:1", now=NOW)) == 2
    assert len(claim(engine, "host:1")) == 2
    assert claim(engine, "host:2") == set()
    engine.dispose()
