"""Storage: Alembic migrations on SQLite and PostgreSQL, applied by `coalition init` only.

Every other command, and the daemon, refuses a database whose schema is missing, older or newer
than the code, with one line that says what to run, and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlmodel import SQLModel

from scheduler import config
from scheduler.store import db, subscribers
from scheduler.store.models import UTCDateTime
from tests.conftest import Coalition, Ran
from tests.test_cli_calls import ADD, SLUG

HEAD = db.head_revision()
PREVIOUS = ScriptDirectory(str(db.MIGRATIONS)).get_revision(HEAD).down_revision


def test_the_head_read_from_file_names_is_alembics_head() -> None:
    """Commands find the newest migration by its file name, without importing Alembic: a
    migration named otherwise than by its revision would make them refuse every database."""
    scripts = ScriptDirectory(str(db.MIGRATIONS))
    assert db.head_revision() == scripts.get_current_head()
    for script in scripts.walk_revisions():
        assert script.path is not None
        assert Path(script.path).name.startswith(f"{script.revision}_")


# What organizers and the daemon run; each must refuse a schema that is not the code's.
COMMANDS = [
    pytest.param(("call", "list"), id="call-list"),
    pytest.param(tuple(ADD), id="call-add"),
    pytest.param(("subscriber", "add", "ada@example.org"), id="subscriber-add"),
    pytest.param(("feed", "build"), id="feed-build"),
    pytest.param(("run-once", "--now", "2018-11-13T14:30:00Z"), id="run-once"),
    pytest.param(("deliveries",), id="deliveries"),
]


def database_file(coalition: Coalition) -> Path:
    return coalition.config.parent / "var" / "coalition.sqlite3"


def service_state(coalition: Coalition) -> dict[str, str]:
    """Every file of the service (the database's bytes included), by path and digest."""
    folder = coalition.config.parent
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def stamp(path: Path, revision: str) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    connection.close()


def at_revision(coalition: Coalition, revision: str) -> None:
    """The service's database as an older coalition's `init` left it."""
    url = config.load(coalition.config).database_url()
    engine = db.make_engine(url)
    try:
        assert db.migrate(engine, revision=revision).after == revision
    finally:
        engine.dispose()


def refused(ran: Ran) -> str:
    """The one line a refusal prints."""
    assert ran.exit_code == 2, ran.stdout + ran.stderr
    assert ran.stderr.count("\n") == 1 and ran.stderr.startswith("error: "), ran.stderr
    return ran.stderr


@pytest.mark.parametrize("extra", [PREVIOUS, "9999"])
def test_a_database_with_two_schema_revisions_is_refused_by_every_command(
        coalition: Coalition, extra: str) -> None:
    """Alembic keeps one row; two (changed by hand, or by another program) say nothing
    certain about the schema: every command refuses, `init` included, in one line."""
    with sqlite3.connect(database_file(coalition)) as connection:
        connection.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (extra,))
    connection.close()
    for args in (("call", "list"), ("init",)):
        line = refused(coalition(*args))
        assert "several schema revisions" in line and extra in line and HEAD in line


def test_init_creates_the_database_then_finds_it_up_to_date(
        coalition_before_init: Coalition) -> None:
    first = coalition_before_init("init")
    assert first.exit_code == 0 and "created database sqlite:///" in first.stdout
    second = coalition_before_init("init")
    assert second.exit_code == 0 and f"is up to date (schema {HEAD})" in second.stdout


def test_init_makes_the_sqlite_file_readable_by_its_owner_only(
        coalition_before_init: Coalition) -> None:
    """It holds members' addresses and unsubscribe tokens, whatever the umask of the admin."""
    assert coalition_before_init("init").exit_code == 0
    assert stat.S_IMODE(database_file(coalition_before_init).stat().st_mode) == 0o600


def test_issue_15_the_sqlite_file_and_its_companions_are_private_from_the_start(
        tmp_path: Path) -> None:
    """Not only once `coalition init` is done: while the schema is made (and whenever the
    -wal and -shm files are made again), under the usual umask 022."""
    path = tmp_path / "var" / "coalition.sqlite3"
    umask = os.umask(0o022)
    try:
        engine = db.make_engine(f"sqlite:///{path}")
        with engine.connect() as connection:
            connection.execute(text("CREATE TABLE secrets (token TEXT)"))
            connection.execute(text("INSERT INTO secrets VALUES ('tok')"))
            connection.commit()
            files = [path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm"))]
            assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {
                f.name: 0o600 for f in files}
        engine.dispose()
    finally:
        os.umask(umask)


def test_issue_15_a_database_an_older_version_left_readable_is_made_private(
        coalition: Coalition) -> None:
    database_file(coalition).chmod(0o644)
    assert coalition("init").exit_code == 0
    assert stat.S_IMODE(database_file(coalition).stat().st_mode) == 0o600


def test_issue_14_a_database_error_never_carries_the_statements_parameters(
        tmp_path: Path) -> None:
    """Parameters are addresses and unsubscribe tokens: an error names the statement only."""
    engine = db.make_engine(f"sqlite:///{tmp_path}/x.sqlite3")
    try:
        with pytest.raises(SQLAlchemyError) as raised, engine.connect() as connection:
            connection.execute(text("INSERT INTO nosuchtable VALUES (:token)"),
                               {"token": "tok-secret-1234"})
        assert "tok-secret-1234" not in str(raised.value)
    finally:
        engine.dispose()


def test_issue_14_an_unexpected_database_error_is_one_line_without_the_statement(
        coalition: Coalition, monkeypatch: pytest.MonkeyPatch) -> None:
    """What PostgreSQL said about a NUL in a name reached the terminal as the whole INSERT,
    the new member's unsubscribe token in its parameters."""
    def refused(*args: object, **kwargs: object) -> None:
        raise DataError("INSERT INTO subscriber (email, token) VALUES (%(email)s, %(token)s)",
                        {"email": "ada@example.org", "token": "tok-secret-1234"},
                        ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes\n"
                                   "DETAIL: more"))

    monkeypatch.setattr(subscribers, "add", refused)
    ran = coalition("subscriber", "add", "ada@example.org")
    assert ran.exit_code == 1 and ran.stderr.count("\n") == 1, ran.stderr
    assert ran.stderr.startswith("internal error: DataError: (builtins.ValueError) PostgreSQL "
                                 "text fields cannot contain NUL (0x00) bytes")
    assert "tok-secret-1234" not in ran.stderr and "INSERT" not in ran.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_before_init_says_to_run_it_and_creates_nothing(
        coalition_before_init: Coalition, command: tuple[str, ...]) -> None:
    line = refused(coalition_before_init(*command))
    assert "does not exist: run `coalition init` to create it" in line
    assert not database_file(coalition_before_init).parent.exists()


def test_an_empty_database_file_says_to_run_init(coalition_before_init: Coalition) -> None:
    """A file with no schema in it (made by hand, or by a failed copy)."""
    path = database_file(coalition_before_init)
    path.parent.mkdir()
    sqlite3.connect(path).close()
    before = service_state(coalition_before_init)
    line = refused(coalition_before_init("call", "list"))
    assert f"database sqlite:///{path} has no schema yet: run `coalition init`" in line
    assert service_state(coalition_before_init) == before


def test_calls_survive_init_on_an_existing_database(coalition: Coalition) -> None:
    assert coalition(*ADD).exit_code == 0
    assert coalition("init").exit_code == 0
    assert [c["slug"] for c in json.loads(coalition("call", "list", "--json").stdout)] == [SLUG]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_old_coalition_refuses_a_schema_a_newer_one_made_and_changes_nothing(
        coalition: Coalition, command: tuple[str, ...]) -> None:
    """The issue's case: replicas (or an organizer's CLI) still on the old version after an
    upgrade. They must not write to a schema they do not know."""
    assert coalition(*ADD).exit_code == 0
    stamp(database_file(coalition), "9999")
    before = service_state(coalition)
    line = refused(coalition(*command))
    assert (f"has schema revision 9999, which this coalition (schema {HEAD}) does not know: it "
            "was upgraded by a newer coalition; install that version (or newer)") in line
    assert service_state(coalition) == before


def test_init_refuses_to_touch_a_schema_a_newer_coalition_made(coalition: Coalition) -> None:
    stamp(database_file(coalition), "9999")
    before = service_state(coalition)
    assert "upgraded by a newer coalition" in refused(coalition("init"))
    assert service_state(coalition) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_new_coalition_refuses_an_older_schema_until_init_upgrades_it(
        coalition_before_init: Coalition, command: tuple[str, ...]) -> None:
    older = str(PREVIOUS)
    at_revision(coalition_before_init, older)
    before = service_state(coalition_before_init)
    line = refused(coalition_before_init(*command))
    assert (f"has schema revision {older}, this coalition needs {HEAD}: run `coalition init` to "
            "upgrade it (back it up first: coalition backup FILE)") in line
    assert service_state(coalition_before_init) == before
    upgraded = coalition_before_init("init")
    assert upgraded.exit_code == 0
    assert f"upgraded database sqlite:///{database_file(coalition_before_init)} from schema " \
           f"{older} to {HEAD}" in upgraded.stdout
    assert coalition_before_init(*command).exit_code == 0


def test_doctor_names_the_schema_problem(coalition: Coalition) -> None:
    stamp(database_file(coalition), "9999")
    ran = coalition("doctor")
    assert ran.exit_code == 2
    assert "database: error: " in ran.stderr and "upgraded by a newer coalition" in ran.stderr


def test_the_daemon_refuses_a_schema_it_does_not_know_before_it_listens(
        coalition: Coalition) -> None:
    stamp(database_file(coalition), "9999")
    command = shutil.which("coalition", path=str(Path(sys.executable).parent))
    assert command
    ran = subprocess.run([command, "--config", str(coalition.config),
                          "daemon", "--port", "0"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.count("\n") == 1 and "install that version (or newer)" in ran.stderr
    assert "ready:" not in ran.stderr


def test_unreachable_database_server_is_one_line(
    coalition: Coalition, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COALITION_DATABASE_URL", "postgresql://postgres@127.0.0.1:9/none")
    ran = coalition("call", "list")
    assert ran.exit_code == 2
    assert ran.stderr.startswith("error: cannot open database postgresql+psycopg://postgres@")
    assert ran.stderr.count("\n") == 1


def schema_drift(url: str) -> list[object]:
    engine = db.make_engine(url)
    try:
        db.migrate(engine)
        with engine.connect() as connection:
            return list(compare_metadata(MigrationContext.configure(connection),
                                         SQLModel.metadata))
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_tables_the_models_describe(tmp_path: Path) -> None:
    """A model changed without a migration would fail here."""
    assert schema_drift(f"sqlite:///{tmp_path}/drift.sqlite3") == []


@pytest.mark.postgres
def test_migrations_match_the_models_on_postgresql(postgres_url: str) -> None:
    assert schema_drift(postgres_url.replace("postgresql://", "postgresql+psycopg://")) == []


@pytest.mark.postgres
def test_organizer_commands_work_on_postgresql(
    coalition: Coalition, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COALITION_DATABASE_URL", postgres_url)
    assert "created database postgresql+psycopg://" in coalition("init").stdout
    assert coalition(*ADD).exit_code == 0
    assert coalition("call", "move", SLUG, "--on", "2019-02-12", "--to",
                     "2019-02-19 10:00").exit_code == 0
    assert coalition("call", "cancel", SLUG, "--on", "2019-01-08").exit_code == 0
    found = json.loads(coalition("call", "occurrences", SLUG, "--json", "--from", "2018-11-01",
                                 "--count", "5").stdout)
    assert [(o["id"], o["status"]) for o in found] == [
        ("2018-11-13T15:00:00Z", "confirmed"), ("2018-12-11T15:00:00Z", "confirmed"),
        ("2019-01-08T15:00:00Z", "cancelled"), ("2019-02-12T15:00:00Z", "moved"),
        ("2019-03-12T14:00:00Z", "confirmed"),
    ]
    duplicate = coalition(*ADD)
    assert duplicate.exit_code == 2 and "already exists" in duplicate.stderr
    assert not database_file(coalition).exists(), "the SQLite default was used instead"


@pytest.mark.postgres
def test_an_older_postgresql_schema_is_refused_with_pg_dump_named(
    coalition_before_init: Coalition, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicas on PostgreSQL: the upgrade is `coalition init`, after a pg_dump."""
    monkeypatch.setenv("COALITION_DATABASE_URL", postgres_url)
    at_revision(coalition_before_init, str(PREVIOUS))
    line = refused(coalition_before_init("call", "list"))
    assert f"this coalition needs {HEAD}: run `coalition init` to upgrade it (back it up " \
           "first: pg_dump)" in line
    assert "upgraded database postgresql+psycopg://" in coalition_before_init("init").stdout
    assert coalition_before_init("call", "list").exit_code == 0


@pytest.mark.postgres
def test_instants_come_back_from_postgresql_in_utc(postgres_url: str) -> None:
    engine = db.make_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            connection.execute(text("SET TIME ZONE 'Asia/Jakarta'"))
            column = UTCDateTime()
            stored = column.process_bind_param(datetime(2018, 11, 13, 15, tzinfo=UTC),
                                               engine.dialect)
            value = connection.execute(text("SELECT CAST(:v AS timestamptz)"), {"v": stored})
            read = column.process_result_value(value.scalar_one(), engine.dialect)
            assert read == datetime(2018, 11, 13, 15, tzinfo=UTC) and read.tzinfo is UTC
    finally:
        engine.dispose()
