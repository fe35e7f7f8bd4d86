"""The database edge: engines, sessions, and Alembic migrations applied on open.

Every command opens the database through `open_database`, which brings the schema up to the
newest migration (so an existing database survives an upgrade of the program) and refuses a
database whose schema is newer than this program knows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from scheduler.errors import DatabaseError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True, kw_only=True)
class SchemaState:
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Readers do not block the writer. In WAL mode, NORMAL syncs at checkpoints, not at every
    # commit: a killed process loses nothing committed; a power cut may lose the last commits
    # (for the outbox: a reminder recorded as sent just before may be sent again).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def migrate(engine: Engine) -> SchemaState:
    """Create or upgrade the schema to the newest migration; return where it was and is."""
    cfg = _alembic_config()
    scripts = ScriptDirectory.from_config(cfg)
    head = head_revision()
    safe_url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.begin() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            if current is not None and current != head:
                try:
                    scripts.get_revision(current)
                except Exception as e:  # alembic raises several kinds for an unknown revision
                    raise DatabaseError(
                        f"database {safe_url} has schema revision {current}, which this version "
                        "of coalition does not know (is it newer?); upgrade coalition"
                    ) from e
            if current != head:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
                log.info("database %s upgraded from %s to %s", safe_url, current, head)
    except OperationalError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        raise DatabaseError(f"cannot open database {safe_url}: {reason}") from e
    except SQLAlchemyError as e:
        raise DatabaseError(f"database {safe_url}: {e}") from e
    return SchemaState(before=current, after=head)


def open_database(url: str) -> Engine:
    """An engine whose schema is current."""
    engine = make_engine(url)
    migrate(engine)
    return engine
