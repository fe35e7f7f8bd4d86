"""a stable iCalendar UID per call, and the people invited to each call

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

from scheduler.store.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call") as batch:
        batch.add_column(sa.Column("uid", sa.String(length=255), nullable=True))
    connection = op.get_bind()
    calls = sa.table("call", sa.column("id", sa.Integer), sa.column("uid", sa.String))
    for (call_id,) in connection.execute(sa.select(calls.c.id)).all():
        connection.execute(calls.update().where(calls.c.id == call_id)
                           .values(uid=f"{uuid.uuid4()}@coalition-calls"))
    with op.batch_alter_table("call") as batch:
        batch.alter_column("uid", existing_type=sa.String(length=255), nullable=False)
        batch.create_unique_constraint("uq_call_uid", ["uid"])
    op.create_table(
        "invitee",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.Integer(), sa.ForeignKey("call.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("invited_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("call_id", "email"),
    )
    op.create_index("ix_invitee_call_id", "invitee", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_invitee_call_id", table_name="invitee")
    op.drop_table("invitee")
    with op.batch_alter_table("call") as batch:
        batch.drop_constraint("uq_call_uid", type_="unique")
        batch.drop_column("uid")
