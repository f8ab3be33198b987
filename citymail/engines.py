"""One database engine for the length of one CLI command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from mailer.settings import Settings

__all__ = ["command_engine"]


@contextmanager
def command_engine(settings: Settings) -> Iterator[Engine]:
    """An engine for ``settings``, disposed of when the command is done.  The database
    modules are imported here, when a verb runs, so that ``citymail --help`` stays quick."""
    from mailer.db import make_engine

    engine = make_engine(settings)
    try:
        yield engine
    finally:
        engine.dispose()
