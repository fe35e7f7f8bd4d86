"""transport outages: a channel's deliveries wait for its transport, on one schedule

While a transport cannot be reached, its deliveries wait for it, not each on its own timer;
the first message it takes afterwards releases them all.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transport_outage",
        sa.Column("channel", sa.String(length=16), primary_key=True),
        sa.Column("transport", sa.String(length=32), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("retry_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("transport_outage")
