"""Whether a database is current, answered without Alembic, must agree with Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text

from mailer import schema
from mailer.db import make_engine, writing
from mailer.settings import Settings


def test_heads_read_from_the_files_are_alembics_heads() -> None:
    alembic = ScriptDirectory.from_config(schema.alembic_config()).get_heads()
    assert schema.head_revisions() == set(alembic)


def test_a_merge_migration_retires_both_parents(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text('revision: str = "b"\ndown_revision = "a"\n')
    (tmp_path / "c.py").write_text('revision = "c"\ndown_revision = "a"\n')
    assert schema.head_revisions(tmp_path) == {"b", "c"}
    (tmp_path / "m.py").write_text('revision = "m"\ndown_revision = ("b", "c")\n')
    assert schema.head_revisions(tmp_path) == {"m"}


def test_an_empty_database_is_not_current_an_upgraded_one_is(tmp_path: Path) -> None:
    engine = make_engine(Settings(database_url=f"sqlite:///{tmp_path / 's.db'}"))
    try:
        assert not schema.is_current(engine)
        schema.upgrade(engine)
        assert schema.is_current(engine)
        with writing(engine) as conn:  # one head missing: an older citymail's database
            conn.execute(text("DELETE FROM alembic_version WHERE version_num = :head"),
                         {"head": sorted(schema.head_revisions())[0]})
        assert not schema.is_current(engine)
    finally:
        engine.dispose()
