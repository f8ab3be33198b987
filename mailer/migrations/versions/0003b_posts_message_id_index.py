"""index posts(list_id, message_id): the duplicate Message-ID rule looks posts up by it

Revision ID: 0003b
Revises: 0003
"""
from __future__ import annotations

from alembic import op

revision = "0003b"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_posts_list_message_id", "posts", ["list_id", "message_id"])


def downgrade() -> None:
    op.drop_index("ix_posts_list_message_id", table_name="posts")
