"""``citymail api token create|list|revoke``: tokens of the JSON API (/api/v1).

A token is printed once, when it is created; citymail keeps only its SHA-256.
Wired into ``citymail.cli.build_parser`` with ``add_api_verbs(sub)``.
"""

from __future__ import annotations

import argparse

from citymail.engines import command_engine as _engine
from citymail.output import print_json
from mailer.apitokens import SCOPES
from mailer.settings import Settings

__all__ = ["add_api_verbs"]


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    from mailer import apitokens
    from mailer.db import writing

    with _engine(settings) as engine, writing(engine) as conn:
        token = apitokens.create_client(conn, args.name, args.scope or [])
    if args.json:
        print_json({"name": args.name, "scopes": list(dict.fromkeys(args.scope)),
                    "token": token})
        return 0
    print(token)
    print(f"citymail: API client {args.name} created with {', '.join(args.scope)}; "
          "this is the only time the token is shown: store it now", flush=True)
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from mailer import apitokens
    from mailer.db import reading

    with _engine(settings) as engine, reading(engine) as conn:
        rows = apitokens.list_clients(conn)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no API clients (create one: citymail api token create NAME --scope SCOPE)")
    for r in rows:
        state = f"revoked {r['revoked'][:16]}" if r["revoked"] else (
            f"last used {r['last_used'][:16]}" if r["last_used"] else "never used")
        print(f"{r['name']:<24} {state:<28} {' '.join(r['scopes'])}")
    return 0


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from mailer import apitokens
    from mailer.db import writing

    with _engine(settings) as engine, writing(engine) as conn:
        done = apitokens.revoke_client(conn, args.name)
    print(f"citymail: API client {args.name} " + ("revoked: its token no longer works"
                                                  if done else "was already revoked"))
    return 0


def add_api_verbs(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``citymail api token …`` to the top-level subparsers."""
    api = sub.add_parser("api", help="the JSON API: client tokens").add_subparsers(
        dest="api_verb", required=True, metavar="WHAT")
    token = api.add_parser("token", help="create, list and revoke API tokens")
    verbs = token.add_subparsers(dest="token_verb", required=True, metavar="ACTION")

    s = verbs.add_parser(
        "create", help="a new client and its token (printed once)",
        description="Scopes: " + "; ".join(f"{k} ({v})" for k, v in SCOPES.items()))
    s.add_argument("name", metavar="NAME", help="who uses it, e.g. league-website")
    s.add_argument("--scope", action="append", required=True, choices=list(SCOPES),
                   metavar="SCOPE", help="repeat for each: " + ", ".join(SCOPES))
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_create)

    s = verbs.add_parser("list", help="clients, their scopes and last use (never tokens)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)

    s = verbs.add_parser("revoke", help="stop a client's token from working, at once")
    s.add_argument("name", metavar="NAME")
    s.set_defaults(func=cmd_revoke)
