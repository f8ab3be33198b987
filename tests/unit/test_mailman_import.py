"""Moving members in from Mailman 2 and 3 (``members import-mailman``) and keeping the old
List-Id (``lists set NAME list-id``), through the real command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_archive_support import CLERK, ArchiveWorld, build_template, make_world

from citymail.cli import main
from mailer.db import reading
from mailer.models import Outbound

pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")

# As `bin/list_members -f -r/-d/-n …` (Mailman 2) prints it, in sections.
MAILMAN2 = """\
[regular]
Rita Regular <rita@example.org>
Nora Nomail <nora@example.org>
Uma Unsubscribed <uma@example.org>
alice@example.org
[digest]
=?utf-8?q?Dani_D=C3=ADaz?= <dani@example.org>
[nomail]
Nora Nomail <nora@example.org>
[left]
Uma Unsubscribed <uma@example.org>
alice@example.org
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("archive-template"))


@pytest.fixture
def world(tmp_path: Path, template: Path) -> Iterator[ArchiveWorld]:
    yield from make_world(tmp_path, template)


@pytest.fixture
def run(world: ArchiveWorld, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):
    for name, value in {"CITYMAIL_DATABASE_URL": world.settings.database_url,
                        "CITYMAIL_VAR_DIR": str(world.settings.var_dir),
                        "CITYMAIL_SECRET_KEY": world.settings.secret_keys[0],
                        "CITYMAIL_VERIFY_DKIM": "0"}.items():
        monkeypatch.setenv(name, value)

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def _show(run, email: str) -> dict:
    code, out, _ = run("members", "show", email, "--json")
    assert code == 0
    return json.loads(out)


def _notices(world: ArchiveWorld) -> int:
    with reading(world.engine) as conn:
        return conn.scalar(select(func.count()).select_from(Outbound)
                           .where(Outbound.kind == "notice"))


def test_import_mailman_keeps_modes_and_opt_outs_as_left(world: ArchiveWorld, run,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "clerks.members"
    path.write_text(MAILMAN2, encoding="utf-8")
    code, out, _ = run("members", "import-mailman", "city-clerks", str(path), "--dry-run")
    assert code == 0 and "would add 4 people" in out and "dry run" in out
    assert "- alice@example.org: left" in out
    assert _show(run, CLERK)["subscriptions"] != [] and _notices(world) == 0
    code, out, _ = run("members", "import-mailman", "city-clerks", str(path),
                       "--list-id", "<city-clerks.lists.oldcity.org>")
    assert code == 0, out
    modes = {e: {s["name"]: s["mode"] for s in _show(run, e)["subscriptions"]}
             for e in ("rita@example.org", "dani@example.org", "nora@example.org")}
    assert modes == {"rita@example.org": {"city-clerks": "regular"},
                     "dani@example.org": {"city-clerks": "digest"},
                     "nora@example.org": {"city-clerks": "nomail"}}
    uma = _show(run, "uma@example.org")
    assert uma["subscriptions"] == [] and uma["left"] == ["city-clerks"]
    alice = _show(run, CLERK)  # was active here; turned delivery off on the old server
    assert "city-clerks" in alice["left"]
    assert "city-clerks" not in [s["name"] for s in alice["subscriptions"]]
    assert _notices(world) == 3  # welcomes for the three new people who receive mail
    code, out, _ = run("lists", "show", "city-clerks", "--json")
    assert json.loads(out)["list_id"] == "city-clerks.lists.oldcity.org"
    # Importing again changes nothing, and never brings back someone who left.
    path.write_text("[regular]\numa@example.org\nrita@example.org\n", encoding="utf-8")
    code, out, err = run("members", "import-mailman", "city-clerks", str(path),
                         "--no-welcome")
    assert code == 0 and "kept out: uma@example.org" in out, err
    assert _show(run, "uma@example.org")["left"] == ["city-clerks"]
    assert _notices(world) == 3


def test_a_file_with_bad_lines_imports_nothing(world: ArchiveWorld, run,
                                               tmp_path: Path) -> None:
    path = tmp_path / "bad.members"
    path.write_text("# mailman members --regular clerks\nok@example.org\nnot an address\n"
                    "[nonsense]\n", encoding="utf-8")
    code, _, err = run("members", "import-mailman", "city-clerks", str(path))
    assert code == 2 and "unknown section [nonsense]" in err
    path.write_text("ok@example.org\nnot an address\n", encoding="utf-8")
    code, out, err = run("members", "import-mailman", "city-clerks", str(path))
    assert code == 2 and "line 2:" in out and "nothing was imported" in err
    assert _show(run, "ok@example.org")["subscriptions"] == [] if run(
        "members", "show", "ok@example.org", "--json")[0] == 0 else True
    code, _, err = run("members", "import-mailman", "no-such-list", str(path))
    assert code == 2 and "no list named" in err


def test_kept_list_id_is_what_members_see_in_list_id(world: ArchiveWorld, run) -> None:
    code, out, _ = run("lists", "set", "city-clerks", "list-id", "<clerks.old.example.org>")
    assert code == 0 and "clerks.old.example.org" in out, out
    post_id = world.post("Kept List-Id", "Filters keep working.")
    with reading(world.engine) as conn:
        body = conn.scalar(select(Outbound.body).where(Outbound.post_id == post_id))
    sent = message_from_bytes(bytes(body), policy=policy.default)
    assert "<clerks.old.example.org>" in str(sent["List-Id"])
    code, _, err = run("lists", "set", "city-clerks", "list-id", "not valid!")
    assert code == 2 and "dot-atom" in err
    code, out, _ = run("lists", "set", "city-clerks", "private_archive", "false")
    assert code == 0
    with world.client() as http:
        assert http.get("/lists/city-clerks/archive/").status_code == 200  # no sign-in
