"""subscribers, and the outbox of deliveries

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriber",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("calls", sa.JSON(), nullable=True),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.Column("unsubscribed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("token"),
    )
    op.create_index("ix_subscriber_email", "subscriber", ["email"], unique=True)
    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.Integer(), sa.ForeignKey("call.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("occurrence_id", UTCDateTime(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("leased_by", sa.String(length=128), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("call_id", "occurrence_id", "rule", "channel", "recipient",
                            name="uq_delivery_key"),
    )
    op.create_index("ix_delivery_call_id", "delivery", ["call_id"])
    op.create_index("ix_delivery_due_at", "delivery", ["due_at"])
    op.create_index("ix_delivery_status", "delivery", ["status"])


def downgrade() -> None:
    op.drop_table("delivery")
    op.drop_index("ix_subscriber_email", table_name="subscriber")
    op.drop_table("subscriber")
