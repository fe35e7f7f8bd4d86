"""`coalition backup FILE`: a consistent copy of a SQLite database, taken while the daemon runs.

The copy is made with SQLite's online backup API in one step, inside one read transaction: it is
the database as it was at one instant, with every committed change before it and nothing of a
transaction still open (in WAL mode the daemon keeps writing meanwhile). The secret a SQLite
install keeps beside its database (`<database>.secret`: it signs sign-up links) is copied
beside the copy (`FILE.secret`). Both copies are readable by their owner only (the database
holds members' addresses), and both appear at once, complete, or not at all: they are written
under temporary names and linked into place, never over an existing file.

PostgreSQL is backed up with its own tool, `pg_dump`; this module refuses it and says so.
Restoring is copying the files back while the daemon is stopped (README, "Deploy").
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from scheduler.errors import SchedulerError
from scheduler.store.db import sqlite_file

log = logging.getLogger(__name__)


class BackupError(SchedulerError):
    """The copy cannot be made: a file in the way, a database that is not SQLite, a failure."""


@dataclass(frozen=True, kw_only=True)
class Backup:
    """What was written: the copy, its schema revision, and the secret's copy (if any)."""

    source: Path
    target: Path
    revision: str | None
    secret: Path | None

    def lines(self) -> list[str]:
        said = [f"backed up {self.source} (schema {self.revision or 'none'}) to {self.target}"]
        if self.secret is not None:
            said.append(f"and the secret beside it to {self.secret} (mode 600)")
        else:
            said.append(f"no secret beside {self.source} (the web secret comes from the "
                        "environment): keep that environment variable's value safe too")
        return said


def secret_beside(database: Path) -> Path:
    """Where a SQLite install keeps its generated web secret (see `signup.site_secret`)."""
    return Path(f"{database}.secret")


def backup(url: str, target: Path) -> Backup:
    """Copy the SQLite database at `url`, and the secret beside it, to `target` (and
    `target`.secret). Refuses PostgreSQL (use pg_dump) and any existing target."""
    source = sqlite_file(url)
    if source is None:
        where = make_url(url).render_as_string(hide_password=True)
        if make_url(url).get_backend_name() == "postgresql":
            raise BackupError(f"{where} is PostgreSQL: back it up with pg_dump (e.g. pg_dump "
                              "--format=custom --file=FILE DBNAME); coalition backup copies "
                              "SQLite files")
        raise BackupError(f"{where}: coalition backup copies SQLite files only")
    if not source.is_file():
        raise BackupError(f"database {source} does not exist: nothing to back up")
    secret = secret_beside(source)
    target_secret = Path(f"{target}.secret") if secret.exists() else None
    for path in (target, target_secret):
        if path is not None and (path.exists() or path.is_symlink()):
            raise BackupError(f"{path} already exists; coalition backup never overwrites: name "
                              "a new file")
    if not target.parent.is_dir():
        raise BackupError(f"{target}: folder {target.parent} does not exist")
    with _partial(target) as copy:
        revision = _copy_database(source, copy)
        if target_secret is None:
            _place(copy, target)
        else:
            with _partial(target_secret) as secret_copy:
                _copy_secret(secret, secret_copy)
                _place(copy, target)
                try:
                    _place(secret_copy, target_secret)
                except BaseException:
                    target.unlink()  # both or neither
                    raise
    log.info("backed up %s to %s", source, target)
    if target_secret is not None:
        log.info("copied the secret beside %s to %s", source, target_secret)
    return Backup(source=source, target=target, revision=revision, secret=target_secret)


@contextlib.contextmanager
def _partial(target: Path) -> Iterator[Path]:
    """A new, empty, owner-only temporary file beside `target`, removed afterwards."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial",
                                    dir=target.parent)
    except OSError as e:
        raise BackupError(f"cannot write in {target.parent}: {e.strerror}") from e
    os.close(fd)  # mkstemp makes it mode 600
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _copy_database(source: Path, copy: Path) -> str | None:
    """The online backup, in one step; returns the copy's schema revision."""
    try:
        with contextlib.closing(sqlite3.connect(source, timeout=30)) as reading, \
                contextlib.closing(sqlite3.connect(copy)) as writing:
            reading.backup(writing)  # pages=-1: every page in one read transaction
            checked = writing.execute("PRAGMA integrity_check").fetchone()[0]
            if checked != "ok":
                raise BackupError(f"the copy of {source} fails SQLite's integrity check: "
                                  f"{checked}")
            try:
                row = writing.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.DatabaseError:
                row = None  # no schema yet: the copy is still what the file holds
        with copy.open("rb") as f:
            os.fsync(f.fileno())
    except sqlite3.Error as e:
        raise BackupError(f"cannot back up {source}: {e}") from e
    return str(row[0]) if row else None


def _copy_secret(secret: Path, copy: Path) -> None:
    try:
        data = secret.read_bytes()
    except OSError as e:
        raise BackupError(f"cannot read {secret}: {e.strerror}") from e
    with copy.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _place(partial: Path, target: Path) -> None:
    """Give the finished copy its name, failing (never overwriting) if the name is taken."""
    try:
        try:
            os.link(partial, target)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            # A file system without hard links: a rename, after a last look for the name.
            if target.exists():
                raise FileExistsError(errno.EEXIST, "exists", str(target)) from e
            partial.rename(target)
    except FileExistsError as e:
        raise BackupError(f"{target} already exists; coalition backup never overwrites: name "
                          "a new file") from e
    except OSError as e:
        raise BackupError(f"cannot write {target}: {e.strerror}") from e
