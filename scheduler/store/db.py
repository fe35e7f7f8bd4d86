"""The database edge: engines, sessions, and the schema (Alembic migrations).

Only `coalition init` changes the schema (`migrate`). Every other command, the daemon and the
web open the database through `open_database`, which changes nothing and refuses, in one line
that says what to do, a database whose schema is not the one this code was written for:

* none yet (or no file): run `coalition init`;
* older: run `coalition init` to upgrade it, after a backup;
* newer, or unknown: a newer coalition upgraded it; install that version.

So a newer CLI run by an organizer never upgrades a schema under daemons still running the
older code: the admin upgrades on purpose, with every daemon stopped.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from scheduler.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaMismatch(DatabaseError):
    """The database has no schema, an older one or one this code does not know.

    `found` is the database's revision (None: no schema), `needed` this code's.
    """

    def __init__(self, message: str, *, found: str | None, needed: str) -> None:
        super().__init__(message)
        self.found, self.needed = found, needed


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


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


SIDECARS = ("-wal", "-shm", "-journal")  # SQLite's files beside the database


def _private_file(path: Path) -> None:
    """Make the SQLite file, empty, readable and writable by its owner only, before SQLite
    opens it: it holds members' addresses and unsubscribe tokens. SQLite gives its -wal, -shm
    and -journal files the database file's mode, so they are private too. A file that exists
    (made by an older version, perhaps 0644) is made private as well, with its companions, where
    its owner runs this."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, *(Path(f"{path}{suffix}") for suffix in SIDECARS)):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)


def _engine(url: str | URL, **options: Any) -> Engine:
    """create_engine, with the statement's parameters (addresses, tokens) kept out of every
    error message and log line: a failed INSERT says what failed, not what it carried."""
    return create_engine(url, hide_parameters=True, **options)


def make_engine(url: str) -> Engine:
    """An engine for `url` (a SQLite file and its folder are made, the file private to its
    owner); the schema is not looked at."""
    path = sqlite_file(url)
    if path is not None:
        _private_file(path)
    engine = _engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


# Alembic (with Mako and Pygments behind it) takes a third of a second to import: every command
# opens the database, and only `coalition init` and a schema that is not this code's need it.
# The newest migration is the one whose file name has the highest number (each is named by its
# revision, "0006_transport_outage.py" is revision "0006"; a test holds this equal to Alembic's
# own head), and the database's revision is one row of Alembic's table.


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@cache
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


@cache
def head_revision() -> str:
    return max(p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def _known(revision: str) -> bool:
    from alembic.util.exc import CommandError

    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:  # alembic's "no such revision" (ResolutionError is a CommandError)
        return False


def _current(connection: Connection) -> str | None:
    """The revision Alembic wrote into the database (None: no schema yet)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    found = sorted(str(row) for row in
                   connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    if len(found) > 1:  # Alembic writes one row for our one line of migrations
        raise DatabaseError(f"database {_where(connection.engine)} has several schema "
                            f"revisions ({', '.join(found)}): it was changed by hand or by "
                            "another program; restore it from a backup")
    return found[0] if found else None


@contextmanager
def _reaching(engine: Engine) -> Iterator[None]:
    """Turns a driver's failure into one line that names the database (never its password)."""
    try:
        yield
    except OperationalError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        raise DatabaseError(f"cannot open database {_where(engine)}: {reason}") from e
    except SQLAlchemyError as e:
        raise DatabaseError(f"database {_where(engine)}: {str(e).splitlines()[0]}") from e


def _newer(engine: Engine, found: str) -> SchemaMismatch:
    head = head_revision()
    return SchemaMismatch(
        f"database {_where(engine)} has schema revision {found}, which this coalition (schema "
        f"{head}) does not know: it was upgraded by a newer coalition; install that version "
        "(or newer)", found=found, needed=head)


def check_schema(engine: Engine) -> str:
    """The database's schema revision, when it is this code's; `SchemaMismatch` otherwise.

    Reads only: nothing is created or changed.
    """
    head = head_revision()
    with _reaching(engine), engine.connect() as connection:
        found = _current(connection)
    if found == head:
        return head
    where = _where(engine)
    if found is None:
        raise SchemaMismatch(f"database {where} has no schema yet: run `coalition init` to "
                             "create it", found=None, needed=head)
    if not _known(found):
        raise _newer(engine, found)
    backup = ("coalition backup FILE" if engine.dialect.name == "sqlite"
              else "pg_dump" if engine.dialect.name == "postgresql" else "your database's tools")
    raise SchemaMismatch(
        f"database {where} has schema revision {found}, this coalition needs {head}: run "
        f"`coalition init` to upgrade it (back it up first: {backup})", found=found, needed=head)


def migrate(engine: Engine, *, revision: str = "head") -> SchemaState:
    """Create the schema or upgrade it (to the newest migration, or to `revision`: the tests
    build older schemas with it); return where it was and is. Only `coalition init` calls it.

    A database upgraded by a newer coalition is refused, and left as it is.
    """
    cfg = _alembic_config()
    with _reaching(engine), engine.begin() as connection:
        current = _current(connection)
        if current is not None and not _known(current):
            raise _newer(engine, current)
        target = _scripts().get_revision(revision)
        assert target is not None
        if current != target.revision:
            from alembic import command

            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
            log.info("database %s upgraded from %s to %s", _where(engine), current,
                     target.revision)
    return SchemaState(before=current, after=target.revision)


def open_database(url: str) -> Engine:
    """An engine on a database whose schema is this code's; `SchemaMismatch` (saying what to
    run) otherwise. Changes nothing: not even a missing SQLite file is created."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        where = make_url(url).render_as_string(hide_password=True)
        raise SchemaMismatch(f"database {where} does not exist: run `coalition init` to "
                             "create it", found=None, needed=head_revision())
    # Looked at through a connection of its own without the SQLite pragmas: setting WAL mode
    # would write to a database that is about to be refused.
    probe = _engine(url, poolclass=NullPool)
    try:
        check_schema(probe)
    finally:
        probe.dispose()
    return make_engine(url)
