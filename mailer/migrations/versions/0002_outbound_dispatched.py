"""outbound.dispatched_at: notices queued outside the workers are found by the clock

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbound", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispatched_at", mailer.db.UTCDateTime(timezone=True),
                                      nullable=True))
    # Everything that existed before was dispatched by the worker that created it.
    op.execute("UPDATE outbound SET dispatched_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("outbound", schema=None) as batch_op:
        batch_op.drop_column("dispatched_at")
