"""Alembic environment: the engine comes from citymail (``config.attributes["connection"]``)."""

from __future__ import annotations

from alembic import context

import mailer.models_bounces  # noqa: F401  (each feature's tables, for autogenerate)
import mailer.models_people  # noqa: F401
from mailer.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode for ALTER TABLE
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
