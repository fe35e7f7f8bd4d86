"""Storage: Alembic migrations on SQLite and PostgreSQL, applied by `init` and by every command."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel

from scheduler import db
from scheduler.models import UTCDateTime
from tests.conftest import Ran
from tests.test_cli_calls import ADD, SLUG

Coalition = Callable[..., Ran]


def database_file(coalition: Coalition) -> Path:
    return Path(coalition.config).parent / "var" / "coalition.sqlite3"  # type: ignore[attr-defined]


def test_init_creates_the_database_then_finds_it_up_to_date(coalition: Coalition) -> None:
    first = coalition("init")
    assert first.exit_code == 0 and "created database" in first.stdout
    second = coalition("init")
    assert second.exit_code == 0 and "is up to date" in second.stdout


def test_any_command_brings_a_new_database_up_to_date(coalition: Coalition) -> None:
    assert coalition("call", "list", "--json").stdout.strip() == "[]"
    assert "is up to date" in coalition("init").stdout


def test_calls_survive_init_on_an_existing_database(coalition: Coalition) -> None:
    assert coalition(*ADD).exit_code == 0
    assert coalition("init").exit_code == 0
    assert [c["slug"] for c in json.loads(coalition("call", "list", "--json").stdout)] == [SLUG]


def test_database_with_a_newer_schema_is_refused(coalition: Coalition) -> None:
    coalition("init")
    with sqlite3.connect(database_file(coalition)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    ran = coalition("call", "list")
    assert ran.exit_code == 2
    assert "schema revision 9999, which this version of coalition does not know" in ran.stderr


def test_unreachable_database_server_is_one_line(
    coalition: Coalition, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COALITION_DATABASE_URL", "postgresql://postgres@127.0.0.1:9/none")
    ran = coalition("call", "list")
    assert ran.exit_code == 2
    assert ran.stderr.startswith("error: cannot open database postgresql+psycopg://postgres@")
    assert ran.stderr.count("\n") == 1


def schema_drift(url: str) -> list[object]:
    engine = db.open_database(url)
    try:
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
def test_instants_come_back_from_postgresql_in_utc(postgres_url: str) -> None:
    engine = db.open_database(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
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
