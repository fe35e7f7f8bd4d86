"""calls and their per-occurrence changes

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("start_local", sa.String(length=19), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("rrule", sa.String(), nullable=True),
        sa.Column("register_url", sa.String(), nullable=True),
        sa.Column("join_url", sa.String(), nullable=True),
        sa.Column("forum_topic", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("zones", sa.JSON(), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_call_slug", "call", ["slug"], unique=True)
    op.create_table(
        "occurrence_change",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.Integer(), sa.ForeignKey("call.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("original_start", UTCDateTime(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("new_start", UTCDateTime(), nullable=True),
        sa.Column("new_duration_minutes", sa.Integer(), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("call_id", "original_start"),
    )
    op.create_index("ix_occurrence_change_call_id", "occurrence_change", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_occurrence_change_call_id", table_name="occurrence_change")
    op.drop_table("occurrence_change")
    op.drop_index("ix_call_slug", table_name="call")
    op.drop_table("call")
