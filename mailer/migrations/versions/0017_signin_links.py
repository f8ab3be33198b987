"""used_signin_links: member sign-in links work once; web_users.sessions_ended_at

Revision ID: 0017signin
Revises: 0010web
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.db

revision = "0017signin"
down_revision = "0010web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, so SQLite adds it in place and existing sessions keep their stamp.
    op.add_column("web_users", sa.Column("sessions_ended_at",
                                         mailer.db.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "used_signin_links",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", mailer.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_used_signin_links")),
    )
    op.create_index(op.f("ix_used_signin_links_expires_at"), "used_signin_links",
                    ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_used_signin_links_expires_at"), table_name="used_signin_links")
    op.drop_table("used_signin_links")
    with op.batch_alter_table("web_users") as batch:
        batch.drop_column("sessions_ended_at")
