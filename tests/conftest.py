"""Shared fixtures: config files by name, a CLI runner on a fresh database, PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import mailbox
import os
import shlex
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from cli import app
from scheduler import config
from scheduler.errors import SchedulerError
from scheduler.store import db

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
REQUIRE_POSTGRES = os.environ.get("COALITION_REQUIRE_POSTGRES") == "1"
POSTGRES_URL = os.environ.get(
    "COALITION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def new_york() -> ZoneInfo:
    return ZoneInfo("America/New_York")


def make_database(config_file: Path) -> None:
    """Create the database `config_file` names (COALITION_DATABASE_URL, when set, wins), as
    `coalition init` does: only that command makes or changes a schema."""
    engine = db.make_engine(config.load(config_file).database_url())
    try:
        db.migrate(engine)
    finally:
        engine.dispose()


class ConfigCase(Protocol):
    """The `config_case` fixture: a copied tests/data/config/<name>.toml, by name."""

    def __call__(self, name: str, folder: str | None = None, *,
                 database: bool = True) -> Path: ...


@pytest.fixture
def config_case(tmp_path: Path) -> ConfigCase:
    """tests/data/config/<name>.toml copied into a fresh folder (named `folder`, default the
    case's name); 'example' is ./config.toml. Each folder is a service of its own; an
    'example' one comes with its database made, as an admin's `coalition init` leaves it
    (`database=False`: without)."""

    def copy(name: str, folder: str | None = None, *, database: bool = True) -> Path:
        source = ROOT / "config.toml" if name == "example" else DATA / "config" / f"{name}.toml"
        target = tmp_path / (folder or name) / "config.toml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        if name == "example" and database:
            make_database(target)
        return target

    return copy


def read_maildir(folder: Path) -> list[EmailMessage]:
    """The messages in a Maildir, in the order they were written."""
    box = mailbox.Maildir(folder, create=True)
    keys = sorted(box.iterkeys(), key=lambda k: (folder / "new" / k).stat().st_mtime_ns)
    return [message_from_bytes(box.get_bytes(key), policy=policy.default) for key in keys]


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str


class Coalition:
    """Runs `coalition --config <config> ARGS...` in-process (`before` sees each command
    first), and reads what the service wrote: its Maildir, its outbox, its forum folder."""

    def __init__(self, config: Path,
                 before: Callable[[Path, tuple[str, ...]], None] | None = None) -> None:
        self.config = config
        self._before = before
        self._runner = CliRunner()

    def __call__(self, *args: str, config_path: Path | None = None,
                 input: str | None = None) -> Ran:
        """`input`: what the command reads on standard input."""
        config_file = config_path or self.config
        if self._before is not None:
            self._before(config_file, args)
        result = self._runner.invoke(app, ["--config", str(config_file), *args], input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Ran(result.exit_code, result.stdout, result.stderr)

    @property
    def folder(self) -> Path:
        """The service's folder: config.toml and the relative paths in it (var/...)."""
        return self.config.parent

    def inbox(self) -> list[EmailMessage]:
        """The messages in the example config's Maildir (var/mail), oldest first."""
        return read_maildir(self.folder / "var" / "mail")

    def deliveries(self, *args: str) -> list[dict[str, Any]]:
        """The rows of `coalition deliveries --json ARGS...`."""
        ran = self("deliveries", "--json", *args)
        assert ran.exit_code == 0, ran.stderr
        rows: list[dict[str, Any]] = json.loads(ran.stdout)
        return rows

    def forum_posts(self, slug: str) -> list[Path]:
        """The posts written for call `slug` in the example config's forum folder, by name."""
        return sorted((self.folder / "var" / "forum" / slug).glob("*.md"))


def cli_runner(config_file: Path, before: Callable[[Path, tuple[str, ...]], None] | None = None
               ) -> Coalition:
    """Runs `coalition --config <config_file> ARGS...` in-process (`before` sees each command
    first)."""
    return Coalition(config_file, before)


@pytest.fixture
def coalition(
    config_case: ConfigCase, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Coalition:
    """Runs `coalition --config <fresh copy of config.toml> ARGS...` in-process, on a database
    `coalition init` made.

    A test that takes `postgres_url` points COALITION_DATABASE_URL at it only after this
    fixture is made (and no SQLite file may appear): there the database a command will use is
    made before the first command on it, unless that command is `init` itself.
    """
    monkeypatch.delenv("COALITION_DATABASE_URL", raising=False)
    later = "postgres_url" in request.fixturenames
    made: set[str] = set()

    def init_first(config_file: Path, args: tuple[str, ...]) -> None:
        try:
            url = config.load(config_file).database_url()
        except SchedulerError:
            return  # the command itself reports what is wrong with the config
        if url not in made and "init" not in args:
            make_database(config_file)
        made.add(url)

    return cli_runner(config_case("example", database=not later),
                      init_first if later else None)


@pytest.fixture
def coalition_before_init(config_case: ConfigCase,
                          monkeypatch: pytest.MonkeyPatch) -> Coalition:
    """Runs `coalition` commands on a fresh service whose database nobody has made yet: what an
    admin meets before running `coalition init`."""
    monkeypatch.delenv("COALITION_DATABASE_URL", raising=False)
    return cli_runner(config_case("example", database=False))


@pytest.fixture
def organizer(coalition: Coalition) -> Callable[[str], Coalition]:
    """Runs the commands of tests/data/calls/<name>.txt, one per line, and returns the runner."""

    def run_script(name: str) -> Coalition:
        for line in (DATA / "calls" / f"{name}.txt").read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                ran = coalition(*shlex.split(line))
                assert ran.exit_code == 0, f"{line}: {ran.stderr}"
        return coalition

    return run_script


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps what it accepts and refuses chosen recipients."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.refuse: dict[str, str] = {}  # address -> "550 ..." answer
        # Holding: after `hold_after` messages, DATA waits until `release()`, so that a test
        # can act (kill a daemon) while a message is in flight. `reached` is set then.
        self.hold_after: int | None = None
        self.reached = threading.Event()
        self._gate: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # `all_in` is set once every address in `expected` has received something.
        self.expected: set[str] = set()
        self.all_in = threading.Event()
        self._to: list[str] = []  # each message's recipient, parsed once

    def release(self) -> None:
        self.hold_after = None
        if self._gate is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._gate.set)

    def recipients(self) -> list[str]:
        return list(self._to)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: Any) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hold_after is not None and len(self.received) >= self.hold_after:
            self._loop = asyncio.get_running_loop()
            self._gate = self._gate or asyncio.Event()
            self.reached.set()
            await self._gate.wait()
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append(message)
        self._to.append(parseaddr(str(message["To"]))[1])
        if self.expected and not self.all_in.is_set() and self.expected <= set(self._to):
            self.all_in.set()
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_sink() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def use_smtp(config: Path, port: int) -> None:
    """Point a copied config.toml at the test SMTP server."""
    text = config.read_text()
    text = text.replace('transport = "maildir"', 'transport = "smtp"', 1)
    config.write_text(text.replace("port = 25", f"port = {port}", 1))


def _postgres_reason() -> str | None:
    try:
        engine = create_engine(make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"))
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
    except Exception as e:  # any failure to connect means: no server here
        return f"no PostgreSQL at {POSTGRES_URL}: {type(e).__name__}: {str(e).splitlines()[0]}"
    return None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards.

    Skips where no server answers, unless COALITION_REQUIRE_POSTGRES=1 (set by .ci/run), which
    turns the skip into a failure.
    """
    reason = _postgres_reason()
    if reason:
        if REQUIRE_POSTGRES:
            pytest.fail(f"{reason} (COALITION_REQUIRE_POSTGRES=1 requires it)")
        pytest.skip(reason)
    name = f"coalition_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"),
                          isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # survives restarts
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
