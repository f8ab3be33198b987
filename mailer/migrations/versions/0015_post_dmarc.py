"""post_dmarc: the DMARC policy a post's author domain had when the post arrived

Revision ID: 0015listserv
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.db

revision = "0015listserv"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "post_dmarc",
        sa.Column("inbound_id", BigId, nullable=False),
        sa.Column("policy", sa.String(length=20), nullable=False),
        sa.Column("created_at", mailer.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["inbound_id"], ["inbound.id"],
                                name=op.f("fk_post_dmarc_inbound_id_inbound"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("inbound_id", name=op.f("pk_post_dmarc")),
    )


def downgrade() -> None:
    op.drop_table("post_dmarc")
