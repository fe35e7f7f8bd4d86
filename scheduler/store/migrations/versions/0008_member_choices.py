"""member choices: which reminders each member gets, and their answers per occurrence

`subscriber.reminders_off` is NULL for every member already there: they keep getting every
reminder, as before they could choose. `rsvp` holds "I'll be there" / "Can't make it", keyed by
the occurrence's original start like its move or cancellation.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.models import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(sa.Column("reminders_off", sa.JSON(), nullable=True))
    op.create_table(
        "rsvp",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subscriber_id", sa.Integer(),
                  sa.ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False),
        sa.Column("call_id", sa.Integer(), sa.ForeignKey("call.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("occurrence_id", UTCDateTime(), nullable=False),
        sa.Column("answer", sa.String(length=8), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("subscriber_id", "call_id", "occurrence_id"),
    )
    op.create_index("ix_rsvp_call_id", "rsvp", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_rsvp_call_id", table_name="rsvp")
    op.drop_table("rsvp")
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_column("reminders_off")
