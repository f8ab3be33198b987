"""``citymail webhooks add|list|remove``: receivers of member, subscription and issue events.

The secret that signs a webhook's POSTs is printed once, when it is added.  Deliveries are
made by the workers' clock (``citymail serve`` or ``citymail worker``).
Wired into ``citymail.cli.build_parser`` with ``add_webhook_verbs(sub)``.
"""

from __future__ import annotations

import argparse

from citymail.engines import command_engine as _engine
from citymail.output import print_json
from mailer.errors import NotFound
from mailer.settings import Settings
from mailer.webhooks import EVENTS

__all__ = ["add_webhook_verbs"]


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from mailer import webhooks
    from mailer.db import writing

    with _engine(settings) as engine, writing(engine) as conn:
        hook_id, secret = webhooks.add_webhook(conn, args.url, args.event)
    if args.json:
        print_json({"id": hook_id, "url": args.url, "events": list(dict.fromkeys(args.event)),
                    "secret": secret})
        return 0
    print(secret)
    print(f"citymail: webhook #{hook_id} added for {', '.join(dict.fromkeys(args.event))}; "
          "the secret above signs every POST (X-Citymail-Signature) and is not shown again")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from mailer import webhooks
    from mailer.db import reading

    with _engine(settings) as engine, reading(engine) as conn:
        rows = webhooks.list_webhooks(conn)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no webhooks (add one: citymail webhooks add URL --event EVENT)")
    for r in rows:
        print(f"#{r['id']:<4} {r['url']}\n      {', '.join(r['events'])}; {r['delivered']} "
              f"delivered, {r['pending']} waiting, {r['failed']} failed")
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    from mailer import webhooks
    from mailer.db import writing

    with _engine(settings) as engine, writing(engine) as conn:
        removed = webhooks.remove_webhook(conn, args.webhook)
    if not removed:
        raise NotFound(f"no webhook {args.webhook!r} (see: citymail webhooks list)")
    print(f"citymail: removed {removed} webhook(s); their undelivered events are dropped")
    return 0


def add_webhook_verbs(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``citymail webhooks …`` to the top-level subparsers."""
    hooks = sub.add_parser("webhooks", help="POST events to other systems").add_subparsers(
        dest="webhooks_verb", required=True, metavar="ACTION")
    s = hooks.add_parser("add", help="a receiver and the events it wants (secret shown once)",
                         description="Events: " + "; ".join(f"{k}: {v}"
                                                            for k, v in EVENTS.items()))
    s.add_argument("url", metavar="URL", help="http(s)://… that answers 2xx within 10 s")
    s.add_argument("--event", action="append", required=True, choices=list(EVENTS),
                   metavar="EVENT", help="repeat for each: " + ", ".join(EVENTS))
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_add)

    s = hooks.add_parser("list", help="webhooks with their delivery counts")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)

    s = hooks.add_parser("remove", help="stop sending to a webhook (by id or URL)")
    s.add_argument("webhook", metavar="ID_OR_URL")
    s.set_defaults(func=cmd_remove)
