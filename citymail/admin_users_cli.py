"""``citymail admin create|passwd|disable|enable|users``: staff accounts for the web pages.

``create EMAIL`` makes an admin unless ``--editor`` or ``--moderator LIST`` says otherwise.
``disable EMAIL`` stops an account signing in and ends its sessions; ``enable`` undoes it.
The password is asked twice on a terminal, or read from the first line of stdin with
``--password-stdin`` (scripts), never from the command line (it would show in ``ps``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from citymail.engines import command_engine as _engine
from citymail.output import print_json
from mailer.db import reading, writing
from mailer.errors import InvalidInput
from mailer.settings import Settings
from web import users

__all__ = ["add_admin_user_verbs", "read_password"]


def read_password(from_stdin: bool, *, stdin: Any = None) -> str:
    """The new password: stdin's first line, or typed twice at a terminal prompt."""
    stream = stdin or sys.stdin
    if from_stdin:
        password = stream.readline().rstrip("\r\n")
    elif stream.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise InvalidInput("the two passwords differ; nothing was changed")
    else:
        raise InvalidInput("no terminal to ask for the password: pipe it with --password-stdin")
    return users.check_password(password)


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    password = read_password(args.password_stdin)
    is_admin = not (args.editor or args.moderator)
    with _engine(settings) as engine, writing(engine) as conn:
        user_id = users.create_user(conn, args.email, password, is_admin=is_admin,
                                    is_editor=args.editor, moderates=args.moderator or ())
    roles = ["admin"] if is_admin else (["editor"] if args.editor else []) + [
        f"moderator of {name}" for name in args.moderator or ()]
    print(f"citymail: account {user_id} for {args.email.strip().lower()}: {', '.join(roles)}")
    return 0


def cmd_passwd(args: argparse.Namespace, settings: Settings) -> int:
    password = read_password(args.password_stdin)
    with _engine(settings) as engine, writing(engine) as conn:
        users.set_password(conn, args.email, password)
    print(f"citymail: new password for {args.email.strip().lower()}; "
          "its sessions are signed out")
    return 0


def cmd_disable(args: argparse.Namespace, settings: Settings) -> int:
    with _engine(settings) as engine, writing(engine) as conn:
        changed = users.set_disabled(conn, args.email, True)
    address = args.email.strip().lower()
    print(f"citymail: {address} is disabled; its sessions are signed out" if changed
          else f"citymail: {address} was disabled already")
    return 0


def cmd_enable(args: argparse.Namespace, settings: Settings) -> int:
    with _engine(settings) as engine, writing(engine) as conn:
        changed = users.set_disabled(conn, args.email, False)
    address = args.email.strip().lower()
    print(f"citymail: {address} may sign in again" if changed
          else f"citymail: {address} was not disabled")
    return 0


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    with _engine(settings) as engine, reading(engine) as conn:
        found = users.list_users(conn)
    rows = [{"id": u.id, "email": u.email, "admin": u.is_admin, "editor": u.is_editor,
             "moderates": sorted(u.moderates), "disabled": u.disabled,
             "last_login": u.last_login} for u in found]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no accounts yet: make the first admin with: citymail admin create EMAIL")
    for r in rows:
        roles = (["admin"] if r["admin"] else []) + (["editor"] if r["editor"] else []) + (
            [f"moderates {', '.join(r['moderates'])}"] if r["moderates"] else [])
        state = " (disabled)" if r["disabled"] else ""
        print(f"{r['email']:<40} {'; '.join(roles) or '-'}{state}")
    return 0


def add_admin_user_verbs(subparsers: Any) -> Any:
    """Add ``admin`` and its actions; returns the actions' subparsers for other verbs."""
    admin = subparsers.add_parser("admin", help="staff accounts for the web pages"
                                  ).add_subparsers(dest="admin_verb", required=True,
                                                   metavar="ACTION")
    s = admin.add_parser("create", help="a staff account (an admin unless --editor or "
                                        "--moderator)")
    s.add_argument("email", metavar="EMAIL")
    s.add_argument("--editor", action="store_true", help="may edit newsletters")
    s.add_argument("--moderator", action="append", metavar="LIST",
                   help="moderates this list (repeat for several)")
    s.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin")
    s.set_defaults(func=cmd_create)
    s = admin.add_parser("passwd", help="set a new password (signs out its sessions)")
    s.add_argument("email", metavar="EMAIL")
    s.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin")
    s.set_defaults(func=cmd_passwd)
    s = admin.add_parser("disable", help="stop an account signing in (ends its sessions)")
    s.add_argument("email", metavar="EMAIL")
    s.set_defaults(func=cmd_disable)
    s = admin.add_parser("enable", help="let a disabled account sign in again")
    s.add_argument("email", metavar="EMAIL")
    s.set_defaults(func=cmd_enable)
    s = admin.add_parser("users", help="the staff accounts and their roles")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_users)
    return admin
