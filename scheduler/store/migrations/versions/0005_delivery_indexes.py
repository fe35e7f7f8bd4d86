"""delivery indexes: one on (status, due_at) instead of three

The outbox grows by a row per member per reminder. The unique key already indexes a call's
deliveries (it starts with call_id), and claims and expiry look for pending rows by due time:
one index on (status, due_at) serves them, and every insert maintains two indexes fewer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_delivery_status_due_at", "delivery", ["status", "due_at"])
    op.drop_index("ix_delivery_call_id", table_name="delivery")
    op.drop_index("ix_delivery_due_at", table_name="delivery")
    op.drop_index("ix_delivery_status", table_name="delivery")


def downgrade() -> None:
    op.create_index("ix_delivery_status", "delivery", ["status"])
    op.create_index("ix_delivery_due_at", "delivery", ["due_at"])
    op.create_index("ix_delivery_call_id", "delivery", ["call_id"])
    op.drop_index("ix_delivery_status_due_at", table_name="delivery")
