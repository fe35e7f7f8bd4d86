"""Alembic environment: runs on the connection `scheduler.store.db.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import scheduler.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations through `coalition init`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
