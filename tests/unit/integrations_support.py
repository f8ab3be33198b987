"""Real parts for the API, sign-up and webhook tests: a migrated database copied per test,
the ``citymail`` command run in-process, and a webhook receiver on a real HTTP server."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import Engine

from citymail.cli import main
from mailer import schema
from mailer.db import make_engine, writing
from mailer.league import load_league, seed_lists
from mailer.settings import Settings

KEY = "integrations-test-key-0123456789abcdef"


def build_template(folder: Path) -> Path:
    """A migrated database with the league's lists (built once per module, then copied)."""
    settings = Settings(database_url=f"sqlite:///{folder}/citymail.db", var_dir=folder,
                        secret_keys=(KEY,))
    engine = make_engine(settings)
    try:
        schema.upgrade(engine)
        with writing(engine) as conn:
            seed_lists(conn, load_league())
    finally:
        engine.dispose()
    return folder / "citymail.db"


_templates: dict[int, Path] = {}


def shared_template(factory: pytest.TempPathFactory) -> Path:
    """``build_template`` once per test session (migrations take a while on a busy box)."""
    key = id(factory)
    if key not in _templates:
        _templates[key] = build_template(factory.mktemp("integrations-template"))
    return _templates[key]


@dataclass
class Installation:
    settings: Settings
    engine: Engine
    monkeypatch: pytest.MonkeyPatch

    def cli(self, *args: str) -> tuple[int, str, str]:
        """``citymail ARGS`` in this process, against this installation."""
        env = {"CITYMAIL_DATABASE_URL": self.settings.database_url,
               "CITYMAIL_VAR_DIR": str(self.settings.var_dir), "CITYMAIL_SECRET_KEY": KEY,
               "CITYMAIL_BASE_URL": self.settings.base_url}
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse refusing the arguments
                code = int(exc.code or 0)
        return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def installation(template: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch,
                 ) -> Iterator[Installation]:
    shutil.copy(template, tmp / "citymail.db")
    settings = Settings(database_url=f"sqlite:///{tmp}/citymail.db", var_dir=tmp,
                        secret_keys=(KEY,))
    engine = make_engine(settings)
    try:
        yield Installation(settings, engine, monkeypatch)
    finally:
        engine.dispose()


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: a real HTTP server on 127.0.0.1 that answers ``statuses`` in
    turn (the last one again and again) and keeps every request."""

    statuses: list[int] = field(default_factory=lambda: [200])
    hits: list[Hit] = field(default_factory=list)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.hits.append(Hit(self.path, dict(self.headers.items()), body))
                index = min(len(receiver.hits), len(receiver.statuses)) - 1
                self.send_response(receiver.statuses[index])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/citymail"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
