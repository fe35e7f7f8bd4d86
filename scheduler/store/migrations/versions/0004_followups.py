"""follow-ups: the recording and notes of an occurrence

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "followup",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.Integer(), sa.ForeignKey("call.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("occurrence_id", UTCDateTime(), nullable=False),
        sa.Column("recording_url", sa.String(), nullable=True),
        sa.Column("notes", sa.String(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("call_id", "occurrence_id"),
    )


def downgrade() -> None:
    op.drop_table("followup")
