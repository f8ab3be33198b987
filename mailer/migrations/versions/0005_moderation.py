"""moderation and email commands: held_records, list_requests, responses_sent

Revision ID: 0005mod
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.db

revision = "0005mod"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "held_records",
        sa.Column("held_id", BigId, nullable=False),
        sa.Column("notify_sender", sa.Boolean(), nullable=False),
        sa.Column("created_at", mailer.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["held_id"], ["held.id"], name=op.f("fk_held_records_held_id_held"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("held_id", name=op.f("pk_held_records")),
    )
    op.create_table(
        "list_requests",
        sa.Column("id", BigId, nullable=False),
        sa.Column("inbound_id", BigId, nullable=False),
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=True),
        sa.Column("needs_approval", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", mailer.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", mailer.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", mailer.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_at", mailer.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=320), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["inbound_id"], ["inbound.id"], name=op.f("fk_list_requests_inbound_id_inbound")),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], name=op.f("fk_list_requests_list_id_lists"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_requests")),
        sa.UniqueConstraint("inbound_id", "list_id", name=op.f("uq_list_requests_inbound_id")),
    )
    with op.batch_alter_table("list_requests", schema=None) as batch_op:
        batch_op.create_index("ix_list_requests_state_expires", ["state", "expires_at"], unique=False)
    op.create_table(
        "responses_sent",
        sa.Column("id", BigId, nullable=False),
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", mailer.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", mailer.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], name=op.f("fk_responses_sent_list_id_lists"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responses_sent")),
        sa.UniqueConstraint("list_id", "address", "kind", name=op.f("uq_responses_sent_list_id")),
    )
    # The expiry sweep looks for held messages by state and age.
    with op.batch_alter_table("held", schema=None) as batch_op:
        batch_op.create_index("ix_held_state_received", ["state", "received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("held", schema=None) as batch_op:
        batch_op.drop_index("ix_held_state_received")
    op.drop_table("responses_sent")
    with op.batch_alter_table("list_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_list_requests_state_expires")
    op.drop_table("list_requests")
    op.drop_table("held_records")
