"""New deliveries written in bulk, as each database does it fastest: COPY on PostgreSQL, one
prepared INSERT on SQLite. Keys already in the outbox are skipped. Only `outbox.sync` writes
through here; the states themselves are the outbox's."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite

from scheduler.store.models import Delivery

_TABLE = Delivery.__table__  # type: ignore[attr-defined]

# What each row handed to `insert` holds, in this order.
COLUMNS = ("call_id", "occurrence_id", "rule", "channel", "recipient", "due_at",
           "expires_at", "status", "attempts", "created_at", "updated_at")


def converter(connection: Connection) -> Callable[[datetime], Any]:
    """A moment as this database stores it, each distinct one converted once: a step's
    thousand deliveries share their moments, and converting each of them a thousand times
    (what SQLAlchemy does per parameter) was most of a large pass's time."""
    dialect = connection.dialect
    convert = _TABLE.c.due_at.type.dialect_impl(dialect).bind_processor(dialect)
    return functools.lru_cache(maxsize=4096)(convert or (lambda moment: moment))


def insert(connection: Connection, rows: list[tuple[Any, ...]]) -> int:
    """Add `rows` (values of `COLUMNS`, moments already `converter`ed) to the outbox, skipping
    keys already there; return how many were added."""
    if connection.dialect.name == "postgresql":
        return _insert_copy(connection, rows)
    return _insert_prepared(connection, rows)


def _insert_prepared(connection: Connection, rows: list[tuple[Any, ...]]) -> int:
    """SQLite: one prepared INSERT run for every row of already converted values (a statement
    holding every row would be compiled anew each time, and can pass the parameter limit)."""
    statement = sqlite.insert(_TABLE).on_conflict_do_nothing(
        index_elements=["call_id", "occurrence_id", "rule", "channel", "recipient"])
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(COLUMNS))
    order = [COLUMNS.index(name) for name in compiled.positiontup or ()]
    if order != list(range(len(COLUMNS))):
        rows = [tuple(row[i] for i in order) for row in rows]
    return connection.exec_driver_sql(compiled.string, rows).rowcount


def _insert_copy(connection: Connection, rows: list[tuple[Any, ...]]) -> int:
    """PostgreSQL: new deliveries go by COPY into a temporary table, then into the outbox in
    one INSERT .. SELECT that skips keys already there. Row by row, even pipelined, was
    several times slower."""
    names = ", ".join(COLUMNS)
    connection.exec_driver_sql(  # emptied by every commit or rollback
        f"CREATE TEMPORARY TABLE IF NOT EXISTS new_delivery ON COMMIT DELETE ROWS AS "
        f"SELECT {names} FROM {_TABLE.name} WITH NO DATA")
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY new_delivery ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    added = connection.exec_driver_sql(
        f"INSERT INTO {_TABLE.name} ({names}) SELECT {names} FROM new_delivery "
        "ON CONFLICT ON CONSTRAINT uq_delivery_key DO NOTHING").rowcount
    connection.exec_driver_sql("DELETE FROM new_delivery")  # a second sync before the commit
    return added
