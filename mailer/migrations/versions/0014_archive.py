"""archive_messages and full-text search: FTS5 on SQLite, tsvector + GIN on PostgreSQL

Revision ID: 0014archive
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.db

revision = "0014archive"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = mailer.db.UTCDateTime(timezone=True)

# External-content FTS5: the text lives once, in archive_messages; triggers keep the index
# in step (https://sqlite.org/fts5.html#external_content_tables).
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE archive_fts USING fts5(subject, author, body, "
    "content='archive_messages', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER archive_fts_ai AFTER INSERT ON archive_messages BEGIN "
    "INSERT INTO archive_fts(rowid, subject, author, body) "
    "VALUES (new.id, new.subject, new.author, new.body); END",
    "CREATE TRIGGER archive_fts_ad AFTER DELETE ON archive_messages BEGIN "
    "INSERT INTO archive_fts(archive_fts, rowid, subject, author, body) "
    "VALUES ('delete', old.id, old.subject, old.author, old.body); END",
    "CREATE TRIGGER archive_fts_au AFTER UPDATE ON archive_messages BEGIN "
    "INSERT INTO archive_fts(archive_fts, rowid, subject, author, body) "
    "VALUES ('delete', old.id, old.subject, old.author, old.body); "
    "INSERT INTO archive_fts(rowid, subject, author, body) "
    "VALUES (new.id, new.subject, new.author, new.body); END",
]
# Subject weighs more than the body; 'english' stems as the porter tokenizer does.
PG_SEARCH = [
    "ALTER TABLE archive_messages ADD COLUMN search tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', coalesce(subject, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(author, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(body, '')), 'C')) STORED",
    "CREATE INDEX ix_archive_messages_search ON archive_messages USING GIN (search)",
]


def upgrade() -> None:
    op.create_table(
        "archive_messages",
        sa.Column("id", BigId, nullable=False),
        sa.Column("post_id", BigId, nullable=False),
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("sent_at", UTC, nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("refs", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"],
                                name=op.f("fk_archive_messages_post_id_posts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"],
                                name=op.f("fk_archive_messages_list_id_lists"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_messages")),
        sa.UniqueConstraint("post_id", name=op.f("uq_archive_messages_post_id")),
    )
    op.create_index("ix_archive_messages_list_sent", "archive_messages",
                    ["list_id", "sent_at"])
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_FTS if dialect == "sqlite" else PG_SEARCH:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS archive_fts")
    op.drop_index("ix_archive_messages_list_sent", table_name="archive_messages")
    op.drop_table("archive_messages")
