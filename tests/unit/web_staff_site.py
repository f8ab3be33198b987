"""A running site for the staff-page tests: a real SQLite database, real accounts, and a
browser-like client that reads forms and sends them back with their hidden fields.

The database (lists, two members, three staff accounts) is built once per session and
copied for each test, because argon2 hashing is deliberately slow.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from mailer import schema
from mailer.db import make_engine, reading, writing
from mailer.league import load_league, seed_lists
from mailer.models import MailingList
from mailer.people import add_member
from mailer.settings import Settings
from web import users
from web.app import create_app
from web.users import create_user

KEY = "staff-test-key-" + "k" * 24
PASSWORD = "correct horse battery"
ADMIN, MODERATOR, EDITOR = "admin@league.org", "mod@league.org", "editor@league.org"
ANN, BOB = "ann@example.org", "bob@example.org"


def build_template(folder: Path) -> Path:
    settings = Settings(database_url=f"sqlite:///{folder}/citymail.db", var_dir=folder,
                        secret_keys=(KEY,))
    engine = make_engine(settings)
    try:
        schema.upgrade(engine)
        league = load_league()
        with writing(engine) as conn:
            seed_lists(conn, league)
            add_member(conn, league, email=ANN, name="Ann Avila", city="Davis",
                       role="City Clerk")
            add_member(conn, league, email=BOB, name="Bob Baker", city="Davis",
                       role="Fire Chief")
            create_user(conn, ADMIN, PASSWORD, is_admin=True)
            create_user(conn, MODERATOR, PASSWORD, moderates=["city-clerks"])
            create_user(conn, EDITOR, PASSWORD, is_editor=True)
    finally:
        engine.dispose()
    return folder / "citymail.db"


@pytest.fixture(scope="session")
def fast_hashing() -> Iterator[None]:
    """argon2 with the smallest cost: the same code path, milliseconds instead of 0.1 s."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(users, "_hasher", cheap)
        mp.setattr(users, "_dummy_hash", lambda: cheap.hash("dummy"))
        yield


@pytest.fixture(scope="session")
def staff_template(tmp_path_factory: pytest.TempPathFactory, fast_hashing: None) -> Path:
    return build_template(tmp_path_factory.mktemp("staff-template"))


def page_text(html: str) -> str:
    """The visible words of a page, one space between them."""
    html = re.sub(r"(?s)<(script|style|title)\b.*?</\1>", " ", html)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"),
                               "fields": {}})
        elif not self.forms:
            return
        elif tag == "select":
            self.select = a.get("name")
        elif tag == "option" and self.select and "selected" in a:
            self.forms[-1]["fields"][self.select] = a.get("value", "")
        elif tag in ("input", "textarea") and "name" in a:
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:  # as a browser sends it
                    self.forms[-1]["fields"][a["name"]] = a.get("value") or "on"
            elif a.get("type") not in ("file", "submit"):
                self.forms[-1]["fields"][a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.select = None


def forms(html: str) -> list[dict]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


@dataclass
class Site:
    settings: Settings
    engine: Engine
    client: TestClient

    def form(self, html: str, action: str) -> dict:
        """The form posting to ``action`` (a path, or its start)."""
        for f in forms(html):
            if f["action"] == action or f["action"].startswith(action):
                return f
        raise AssertionError(f"no form posting to {action} in: {page_text(html)[:400]}")

    def submit(self, path: str, target: str | None = None, /, files=None,
               **changes: str | None):
        """Open ``path`` and send its form posting to ``target`` with some fields changed
        (None: left out, as an unticked box)."""
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        f = self.form(page.text, target or path)
        data = {k: v for k, v in {**f["fields"], **changes}.items() if v is not None}
        return self.client.post(f["action"], data=data, files=files, follow_redirects=False)

    def sign_in(self, email: str, password: str = PASSWORD, next_path: str = ""):
        path = "/login" + (f"?next={next_path}" if next_path else "")
        return self.submit(path, "/login", email=email, password=password)

    def list_id(self, name: str) -> int:
        with reading(self.engine) as conn:
            return conn.execute(select(MailingList.id).where(MailingList.name == name)
                                ).scalar_one()


def make_site(template: Path, folder: Path, **overrides) -> tuple[Settings, Engine]:
    shutil.copy(template, folder / "citymail.db")
    settings = Settings(database_url=f"sqlite:///{folder}/citymail.db", var_dir=folder,
                        secret_keys=(KEY,), base_url="http://testserver", **overrides)
    return settings, make_engine(settings)


@pytest.fixture
def site(staff_template: Path, tmp_path: Path) -> Iterator[Site]:
    settings, engine = make_site(staff_template, tmp_path)
    with TestClient(create_app(settings, engine)) as client:
        yield Site(settings, engine, client)
    engine.dispose()
