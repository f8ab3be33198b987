"""Fixtures for unit tests that need an initialised citymail database (SQLite, per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import base_env
from sqlalchemy import Engine

from citymail import admin
from mailer.db import make_engine
from mailer.settings import Settings, load_settings


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """CITYMAIL_* variables of a fresh installation, with its database created."""
    env = base_env(tmp_path)
    admin.init(load_settings(env))
    return env


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    yield engine
    engine.dispose()
