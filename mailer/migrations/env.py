"""Alembic environment: the engine comes from citymail (``config.attributes["connection"]``)."""

from __future__ import annotations

from alembic import context

from mailer import (
    leases,
    models_api,
    models_archive,
    models_bounces,
    models_digests,
    models_people,
    models_web,
)
from mailer.models import Base

# Each feature declares its tables in its own module; autogenerate must see them.  (The
# listservs and newsletters models sit above mailer in the layering: import them in the
# session that runs autogenerate.)
FEATURE_MODELS = (leases, models_api, models_archive, models_bounces, models_digests, models_people,
                  models_web)

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
