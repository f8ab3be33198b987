"""bounce_events, bounce_states, bounce_intake: bounce scores and disabled delivery

Revision ID: 0006bounce
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.db

revision = "0006bounce"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = mailer.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bounce_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("subscription_id", BigId, nullable=False),
        sa.Column("member_id", BigId, nullable=False),
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("occurred_at", UTC, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=True),
        sa.Column("delivery_id", BigId, nullable=True),
        sa.Column("outbound_id", BigId, nullable=True),
        sa.Column("inbound_id", BigId, nullable=True),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"],
                                name=op.f("fk_bounce_events_subscription_id_subscriptions"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"],
                                name=op.f("fk_bounce_events_member_id_members"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"],
                                name=op.f("fk_bounce_events_list_id_lists"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_events")),
    )
    with op.batch_alter_table("bounce_events", schema=None) as batch_op:
        batch_op.create_index("ix_bounce_events_subscription_at",
                              ["subscription_id", "occurred_at"], unique=False)
        batch_op.create_index("ix_bounce_events_member_id", ["member_id"], unique=False)
        batch_op.create_index("ix_bounce_events_delivery_id", ["delivery_id"], unique=False)
        batch_op.create_index("ix_bounce_events_outbound_kind", ["outbound_id", "kind"],
                              unique=False)

    op.create_table(
        "bounce_states",
        sa.Column("subscription_id", BigId, nullable=False),
        sa.Column("delivery_status", sa.String(length=20), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("score_at", UTC, nullable=True),
        sa.Column("reenabled_at", UTC, nullable=True),
        sa.Column("disabled_at", UTC, nullable=True),
        sa.Column("warnings_sent", sa.Integer(), nullable=False),
        sa.Column("last_warning_at", UTC, nullable=True),
        sa.Column("next_action_at", UTC, nullable=True),
        sa.Column("removed_at", UTC, nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"],
                                name=op.f("fk_bounce_states_subscription_id_subscriptions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_bounce_states")),
    )
    with op.batch_alter_table("bounce_states", schema=None) as batch_op:
        batch_op.create_index("ix_bounce_states_due", ["delivery_status", "next_action_at"],
                              unique=False)

    op.create_table(
        "bounce_intake",
        sa.Column("id", BigId, nullable=False),
        sa.Column("inbound_id", BigId, nullable=True),
        sa.Column("list_id", BigId, nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"],
                                name=op.f("fk_bounce_intake_list_id_lists"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_intake")),
    )
    with op.batch_alter_table("bounce_intake", schema=None) as batch_op:
        batch_op.create_index("ix_bounce_intake_outcome_at", ["outcome", "created_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bounce_intake", schema=None) as batch_op:
        batch_op.drop_index("ix_bounce_intake_outcome_at")
    op.drop_table("bounce_intake")
    with op.batch_alter_table("bounce_states", schema=None) as batch_op:
        batch_op.drop_index("ix_bounce_states_due")
    op.drop_table("bounce_states")
    with op.batch_alter_table("bounce_events", schema=None) as batch_op:
        batch_op.drop_index("ix_bounce_events_outbound_kind")
        batch_op.drop_index("ix_bounce_events_delivery_id")
        batch_op.drop_index("ix_bounce_events_member_id")
        batch_op.drop_index("ix_bounce_events_subscription_at")
    op.drop_table("bounce_events")
