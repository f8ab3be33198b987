"""Create or upgrade the schema with Alembic (``citymail init``), and tell whether it is
current without importing Alembic (``citymail serve`` checks at start)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["alembic_config", "head_revisions", "is_current", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the database to ``revision``; running it again changes nothing."""
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a migration from the models (developers only)."""
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)


def head_revisions(versions: Path = MIGRATIONS / "versions") -> set[str]:
    """The migrations no other migration builds on, read from the files' ``revision`` and
    ``down_revision`` assignments.  Alembic's script directory (with Mako and Pygments)
    costs the long-running gateway process 11 MB for this one question at start-up;
    a test checks the answer equals Alembic's ``get_heads()``."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        values: dict[str, object] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target = (node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1
                      else node.target if isinstance(node, ast.AnnAssign) else None)
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                values[target.id] = ast.literal_eval(node.value)  # type: ignore[arg-type]
        if isinstance(values.get("revision"), str):
            revisions.add(values["revision"])  # type: ignore[arg-type]
            down = values.get("down_revision")
            parents.update([down] if isinstance(down, str) else down or ())  # type: ignore[arg-type]
    return revisions - parents


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest migration (every head applied)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):  # never initialised
            return False
        current = set(conn.scalars(text("SELECT version_num FROM alembic_version")))
    return current == head_revisions()
