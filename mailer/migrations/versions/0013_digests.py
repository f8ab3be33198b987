"""digest_items, digests, digest_state, digest_last: list digests

Revision ID: 0013digest
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.db

revision = "0013digest"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = mailer.db.UTCDateTime(timezone=True)


def _fk(table: str, column: str, target: str, **kw: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"],
                                   name=op.f(f"fk_{table}_{column}_{target}"), **kw)


def upgrade() -> None:
    op.create_table(
        "digests",
        sa.Column("id", BigId, nullable=False),
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("volume", sa.Integer(), nullable=False),
        sa.Column("issue", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("sent_at", UTC, nullable=False),
        _fk("digests", "list_id", "lists", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digests")),
        sa.UniqueConstraint("list_id", "volume", "issue", name=op.f("uq_digests_list_id")),
    )
    op.create_table(
        "digest_items",
        sa.Column("id", BigId, nullable=False),
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("post_id", BigId, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("added_at", UTC, nullable=False),
        sa.Column("digest_id", BigId, nullable=True),
        _fk("digest_items", "list_id", "lists", ondelete="CASCADE"),
        _fk("digest_items", "post_id", "posts", ondelete="CASCADE"),
        _fk("digest_items", "digest_id", "digests"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_items")),
        sa.UniqueConstraint("post_id", name=op.f("uq_digest_items_post_id")),
    )
    op.create_index("ix_digest_items_waiting", "digest_items", ["digest_id", "list_id", "id"])
    op.create_table(
        "digest_state",
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("volume", sa.Integer(), nullable=False),
        sa.Column("issue", sa.Integer(), nullable=False),
        sa.Column("last_sent_at", UTC, nullable=True),
        _fk("digest_state", "list_id", "lists", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("list_id", name=op.f("pk_digest_state")),
    )
    op.create_table(
        "digest_last",
        sa.Column("id", BigId, nullable=False),
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("member_id", BigId, nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("from_item", BigId, nullable=False),
        sa.Column("upto_item", BigId, nullable=False),
        sa.Column("requested_at", UTC, nullable=False),
        sa.Column("sent_at", UTC, nullable=True),
        _fk("digest_last", "list_id", "lists", ondelete="CASCADE"),
        _fk("digest_last", "member_id", "members", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_last")),
    )
    op.create_index("ix_digest_last_pending", "digest_last", ["sent_at", "list_id"])
    op.create_index("ix_outbound_post_id", "outbound", ["post_id"])


def downgrade() -> None:
    op.drop_index("ix_outbound_post_id", table_name="outbound")
    op.drop_index("ix_digest_last_pending", table_name="digest_last")
    op.drop_table("digest_last")
    op.drop_table("digest_state")
    op.drop_index("ix_digest_items_waiting", table_name="digest_items")
    op.drop_table("digest_items")
    op.drop_table("digests")
