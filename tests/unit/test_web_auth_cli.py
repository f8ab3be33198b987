"""``citymail admin create|passwd|disable|enable|users``: staff accounts, from a shell."""

from __future__ import annotations

import io
import json

import pytest
import web_staff_site
from starlette.testclient import TestClient
from web_staff_site import Site, page_text

from citymail.cli import main
from mailer.db import make_engine
from mailer.settings import load_settings
from web.app import create_app

fast_hashing = web_staff_site.fast_hashing


@pytest.fixture
def shell(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, fast_hashing: None):
    """Run ``citymail ARGS`` with ``env`` and the given stdin; returns (code, out, err)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def run(capsys: pytest.CaptureFixture[str], *args: str, stdin: str = ""):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_first_admin_is_created_and_can_sign_in(shell, capsys, env):
    code, out, _ = shell(capsys, "admin", "create", "Boss@League.org", "--password-stdin",
                         stdin="a long enough password\n")
    assert code == 0 and "boss@league.org: admin" in out
    code, out, _ = shell(capsys, "admin", "create", "clerkmod@league.org",
                         "--moderator", "city-clerks", "--password-stdin",
                         stdin="another long password\n")
    assert code == 0 and "moderator of city-clerks" in out

    code, out, _ = shell(capsys, "admin", "users", "--json")
    rows = {r["email"]: r for r in json.loads(out)}
    assert rows["boss@league.org"]["admin"] is True
    assert rows["clerkmod@league.org"]["moderates"] == ["city-clerks"]
    assert rows["clerkmod@league.org"]["admin"] is False

    settings = load_settings(env)
    engine = make_engine(settings)
    try:
        with TestClient(create_app(settings, engine)) as client:
            site = Site(settings, engine, client)
            assert site.sign_in("boss@league.org", "a long enough password"
                                ).headers["location"] == "/admin/"
    finally:
        engine.dispose()


def test_passwd_changes_the_password(shell, capsys):
    shell(capsys, "admin", "create", "boss@league.org", "--password-stdin",
          stdin="a long enough password\n")
    code, out, _ = shell(capsys, "admin", "passwd", "boss@league.org", "--password-stdin",
                         stdin="the second password\n")
    assert code == 0 and "new password for boss@league.org" in out


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("admin", "create", "boss@league.org", "--password-stdin"), "short\n",
     "at least 10 characters"),
    (("admin", "create", "boss@league.org", "--moderator", "no-such-list",
      "--password-stdin"), "a long enough password\n", "no list called 'no-such-list'"),
    (("admin", "create", "not-an-address", "--password-stdin"), "a long enough password\n",
     "not a valid email address"),
    (("admin", "passwd", "nobody@league.org", "--password-stdin"), "a long enough password\n",
     "no account for nobody@league.org"),
    (("admin", "create", "boss@league.org"), "", "pipe it with --password-stdin"),
    (("admin", "disable", "nobody@league.org"), "", "no account for nobody@league.org"),
    (("admin", "enable", "nobody@league.org"), "", "no account for nobody@league.org"),
])
def test_mistakes_are_one_line_errors(shell, capsys, args, stdin, message):
    code, _out, err = shell(capsys, *args, stdin=stdin)
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1


def test_an_address_gets_one_account(shell, capsys):
    shell(capsys, "admin", "create", "boss@league.org", "--password-stdin",
          stdin="a long enough password\n")
    code, _, err = shell(capsys, "admin", "create", "BOSS@league.org", "--password-stdin",
                         stdin="a long enough password\n")
    assert code != 0 and "already has an account" in err
    code, out, _ = shell(capsys, "admin", "users")
    assert out.count("boss@league.org") == 1 and "admin" in out


def test_a_disabled_account_is_signed_out_at_once_and_may_not_sign_in(shell, capsys, env):
    password = "a long enough password"
    shell(capsys, "admin", "create", "boss@league.org", "--password-stdin",
          stdin=password + "\n")
    settings = load_settings(env)
    engine = make_engine(settings)
    try:
        with TestClient(create_app(settings, engine)) as client:
            site = Site(settings, engine, client)
            site.sign_in("boss@league.org", password)
            assert client.get("/admin/").status_code == 200

            code, out, _ = shell(capsys, "admin", "disable", "Boss@League.org")
            assert code == 0 and "boss@league.org is disabled" in out
            # The open session ends on its very next request.
            page = client.get("/admin/", follow_redirects=False)
            assert page.status_code == 303
            assert page.headers["location"] == "/login?next=/admin/"
            refused = site.sign_in("boss@league.org", password)
            assert refused.status_code == 401
            assert "do not match an account" in page_text(refused.text)
            out = shell(capsys, "admin", "users")[1]
            assert "boss@league.org" in out and "(disabled)" in out
            assert "was disabled already" in shell(capsys, "admin", "disable",
                                                   "boss@league.org")[1]

            code, out, _ = shell(capsys, "admin", "enable", "boss@league.org")
            assert code == 0 and "boss@league.org may sign in again" in out
            # The session ended for good: enabling the account does not bring it back.
            assert client.get("/admin/", follow_redirects=False).status_code == 303
            assert site.sign_in("boss@league.org", password).headers["location"] == "/admin/"
            assert client.get("/admin/").status_code == 200
            assert "(disabled)" not in shell(capsys, "admin", "users")[1]
    finally:
        engine.dispose()
