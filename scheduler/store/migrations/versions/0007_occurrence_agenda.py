"""occurrence agendas: each occurrence's own agenda, in every message about it

Keyed by the occurrence's original start, like its move or cancellation, but in a table of its
own: an occurrence with only an agenda is neither moved nor cancelled.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "occurrence_agenda",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.Integer(), sa.ForeignKey("call.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("original_start", UTCDateTime(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("call_id", "original_start"),
    )
    op.create_index("ix_occurrence_agenda_call_id", "occurrence_agenda", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_occurrence_agenda_call_id", table_name="occurrence_agenda")
    op.drop_table("occurrence_agenda")
