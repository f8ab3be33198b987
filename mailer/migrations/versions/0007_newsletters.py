"""newsletter_feeds, newsletter_items, newsletter_issues: newsletters and their issues

Revision ID: 0007news
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.db

revision = "0007news"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = mailer.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "newsletter_feeds",
        sa.Column("id", BigId, nullable=False),
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(length=1000), nullable=True),
        sa.Column("last_modified", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_polled_at", UTC, nullable=True),
        sa.Column("last_ok_at", UTC, nullable=True),
        sa.Column("next_poll_at", UTC, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"],
                                name=op.f("fk_newsletter_feeds_list_id_lists"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_newsletter_feeds")),
        sa.UniqueConstraint("list_id", "url", name=op.f("uq_newsletter_feeds_list_id")),
    )
    op.create_table(
        "newsletter_items",
        sa.Column("id", BigId, nullable=False),
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("feed_id", BigId, nullable=False),
        sa.Column("guid", sa.String(length=2000), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("published_at", UTC, nullable=True),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("first_seen_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"],
                                name=op.f("fk_newsletter_items_list_id_lists"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["feed_id"], ["newsletter_feeds.id"],
                                name=op.f("fk_newsletter_items_feed_id_newsletter_feeds"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_newsletter_items")),
        sa.UniqueConstraint("list_id", "guid", name=op.f("uq_newsletter_items_list_id")),
    )
    with op.batch_alter_table("newsletter_items", schema=None) as batch_op:
        batch_op.create_index("ix_newsletter_items_list_seen", ["list_id", "first_seen_at"],
                              unique=False)
    op.create_table(
        "newsletter_issues",
        sa.Column("id", BigId, nullable=False),
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("preheader", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("blocks", sa.JSON(), nullable=False),
        sa.Column("text_version", sa.Text(), nullable=True),
        sa.Column("item_order", sa.JSON(), nullable=False),
        sa.Column("dropped_items", sa.JSON(), nullable=False),
        sa.Column("sent_items", sa.JSON(), nullable=True),
        sa.Column("send_at", UTC, nullable=True),
        sa.Column("send_zone", sa.String(length=64), nullable=True),
        sa.Column("send_local", sa.String(length=32), nullable=True),
        sa.Column("outbound_id", BigId, nullable=True),
        sa.Column("archive_html", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"],
                                name=op.f("fk_newsletter_issues_list_id_lists")),
        sa.ForeignKeyConstraint(["outbound_id"], ["outbound.id"],
                                name=op.f("fk_newsletter_issues_outbound_id_outbound")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_newsletter_issues")),
    )
    with op.batch_alter_table("newsletter_issues", schema=None) as batch_op:
        batch_op.create_index("ix_newsletter_issues_state_send_at", ["state", "send_at"],
                              unique=False)


def downgrade() -> None:
    op.drop_table("newsletter_issues")
    op.drop_table("newsletter_items")
    op.drop_table("newsletter_feeds")
