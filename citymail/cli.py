"""The ``citymail`` command.  Errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from citymail.admin_users_cli import add_admin_user_verbs
from citymail.api_cli import add_api_verbs
from citymail.archive_cli import add_archive_verbs
from citymail.bounces_cli import add_bounce_verbs
from citymail.digests_cli import add_digest_verbs, add_member_mode_verb
from citymail.dkim_cli import add_dkim_verbs
from citymail.lists_set_cli import add_lists_set_verb
from citymail.members_cli import add_member_verbs
from citymail.moderation_cli import add_moderation_verbs
from citymail.newsletters_cli import add_bench_newsletter, add_newsletter_verbs
from citymail.ops_cli import add_ops_verbs
from citymail.output import print_json
from citymail.postfix_cli import add_postfix_verbs
from citymail.status_cli import add_status_verbs
from citymail.webhooks_cli import add_webhook_verbs
from mailer.errors import CitymailError
from mailer.settings import Settings, load_settings

__all__ = ["main"]

Handler = Callable[[argparse.Namespace, Settings], int]


# -- verbs ---------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    from citymail import admin

    added = admin.init(settings)
    print(f"citymail: database ready at {settings.database_url}; "
          f"{added} lists and newsletters added")
    if indexed := admin.index_archive(settings):
        print(f"citymail: {indexed} archived posts indexed for search")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from citymail.serve import serve
    from mailer.dkim_sign import Signer

    Signer.from_settings(settings)  # a bad DKIM key stops here, in one line

    from mailer.logfmt import configure_logging

    configure_logging(settings.log_format)  # CITYMAIL_LOG_FORMAT=text|json
    serve(settings, run_workers=not args.no_workers, threads=args.threads)
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from citymail.worker import run
    from mailer.dkim_sign import Signer

    Signer.from_settings(settings)

    if settings.embedded_broker:
        raise CitymailError("citymail worker needs CITYMAIL_BROKER_URL=redis://… or amqp://…; "
                            "with the embedded broker, citymail serve runs the workers itself")
    run(settings, processes=args.processes, threads=args.threads or settings.worker_threads)
    return 0


def cmd_lists_show(args: argparse.Namespace, settings: Settings) -> int:
    from citymail import admin

    rows = admin.lists_show(settings, args.name)
    if args.json:
        print_json(rows if args.name is None else rows[0])
        return 0
    for row in rows:
        print(f"{row['address']:<52} {row['kind']:<10} {row['subscribers']:>6}  "
              f"{row['display_name']}")
    return 0


def cmd_lists_members(args: argparse.Namespace, settings: Settings) -> int:
    from citymail import admin

    rows = admin.lists_members(settings, args.name)
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            print(f"{row['email']:<40} {row['mode']:<8} {row['name']}")
    return 0


def cmd_lists_held(args: argparse.Namespace, settings: Settings) -> int:
    from citymail import admin

    rows = admin.lists_held(settings, args.name)
    if args.json:
        print_json(rows)
    else:
        if not rows:
            print(f"no messages held on {args.name}")
        for row in rows:
            print(f"{row['id']:>6}  {row['received']}  {row['sender']:<32} {row['subject']}\n"
                  f"        {'; '.join(row['reasons'])}")
    return 0


def cmd_deliveries_status(args: argparse.Namespace, settings: Settings) -> int:
    from citymail import admin

    rows = admin.deliveries_status(settings, all_messages=args.all)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("nothing is being delivered")
    for r in rows:
        eta = "unknown (nothing sent in the last minute)" if r["eta_seconds"] is None else (
            f"{r['eta_seconds']:.0f} s")
        print(f"#{r['id']} {r.get('kind', '?')} {r.get('list') or '-'}: {r['sent']}/{r['total']} "
              f"sent, {r['pending'] + r['sending']} queued, {r['deferred']} deferred, "
              f"{r['failed']} failed, {r['paused']} paused, {r['cancelled']} cancelled "
              f"({r['state']}); {r['rate_per_s']}/s; ETA {eta}")
    return 0


def cmd_bounces_parse(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from mailer.bounces import bounce_result_json

    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise CitymailError(f"{name}: no such file")
        result = bounce_result_json(path)
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            kind = {True: "permanent", False: "temporary", None: "not a bounce"}
            print(f"{name}: {kind[result['permanent']]}: {' '.join(result['addresses'])}")
    return 0


def cmd_feeds_parse(args: argparse.Namespace, settings: Settings) -> int:
    from newsletters.feeds import load_source, parse_feed, to_json

    fetched = load_source(args.source)
    if fetched.status != "ok" or fetched.body is None:
        result = {"feed": {"title": None, "link": None}, "items": [],
                  "error": fetched.error or f"could not read {args.source}"}
    else:
        result = to_json(parse_feed(fetched.body, url=fetched.url,
                                    content_type=fetched.content_type))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"{result['feed']['title']}: {len(result['items'])} items"
              + (f" (broken: {result['error']})" if result["error"] else ""))
        for item in result["items"]:
            print(f"  {item['published'] or '-':<26} {item['title']}")
    return 0


def cmd_bench_fanout(args: argparse.Namespace, settings: Settings) -> int:
    from citymail.bench import fanout

    _print_json_line(fanout(members=args.members, mode=args.mode, relay=args.relay,
                            threads=args.threads, posts=args.posts))
    return 0


def _print_json_line(value: dict[str, Any]) -> None:
    print(json.dumps(value))


# -- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="citymail", description="List server and newsletters "
                                "for a league of cities. Settings come from CITYMAIL_* "
                                "variables (see README).")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    s = sub.add_parser("init", help="create or upgrade the database and load the default lists")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("serve", help="run the SMTP gateway, workers and clock")
    s.add_argument("--no-workers", action="store_true",
                   help="gateway only (workers run elsewhere with `citymail worker`)")
    s.add_argument("--threads", type=int, help="worker threads (default CITYMAIL_WORKER_THREADS)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("worker", help="run worker processes against Redis or RabbitMQ")
    s.add_argument("--processes", type=int, default=1)
    s.add_argument("--threads", type=int)
    s.set_defaults(func=cmd_worker)

    lists = sub.add_parser("lists", help="lists and newsletters").add_subparsers(
        dest="lists_verb", required=True, metavar="ACTION")
    s = lists.add_parser("show", help="show all lists, or one")
    s.add_argument("name", nargs="?")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_lists_show)
    s = lists.add_parser("members", help="the subscribers of a list")
    s.add_argument("name")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_lists_members)
    s = lists.add_parser("held", help="messages held for moderation on a list")
    s.add_argument("name")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_lists_held)
    add_digest_verbs(lists)
    add_lists_set_verb(lists)

    members = sub.add_parser("members", help="people").add_subparsers(
        dest="members_verb", required=True, metavar="ACTION")
    add_member_verbs(members)
    add_member_mode_verb(members)
    add_archive_verbs(lists, members)

    deliveries = sub.add_parser("deliveries", help="outgoing mail").add_subparsers(
        dest="deliveries_verb", required=True, metavar="ACTION")
    s = deliveries.add_parser("status", help="progress and ETA of messages being delivered")
    s.add_argument("--all", action="store_true", help="include finished messages")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_deliveries_status)

    bounces = sub.add_parser("bounces", help="bounce processing").add_subparsers(
        dest="bounces_verb", required=True, metavar="ACTION")
    s = bounces.add_parser("parse", help="parse bounce messages from files")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bounces_parse)
    add_bounce_verbs(bounces)

    feeds = sub.add_parser("feeds", help="RSS and Atom feeds").add_subparsers(
        dest="feeds_verb", required=True, metavar="ACTION")
    s = feeds.add_parser("parse", help="parse a feed file or URL as an issue would use it")
    s.add_argument("source", metavar="FILE_OR_URL")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_feeds_parse)

    add_moderation_verbs(sub)
    add_admin_user_verbs(sub)
    add_newsletter_verbs(sub)
    add_dkim_verbs(sub)
    add_api_verbs(sub)
    add_webhook_verbs(sub)
    add_status_verbs(sub)
    add_ops_verbs(sub)
    add_postfix_verbs(sub)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(
        dest="bench_verb", required=True, metavar="ACTION")
    add_bench_newsletter(bench)
    s = bench.add_parser("fanout", help="one post to N members through the gateway")
    s.add_argument("--members", type=int, default=10_000)
    s.add_argument("--mode", choices=["bulk", "personalised"], default="personalised")
    s.add_argument("--relay", required=True, help="smtp://HOST:PORT or outbox:DIR")
    s.add_argument("--threads", type=int, default=8)
    s.add_argument("--posts", type=int, default=1, help="posts to send; the median is printed")
    s.set_defaults(func=cmd_bench_fanout)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        return int(args.func(args, settings))
    except CitymailError as exc:
        print(f"citymail: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the process boundary: one line, never a traceback
        logging.getLogger("citymail").debug("unexpected error", exc_info=True)
        print(f"citymail: error: {one_line(exc)}", file=sys.stderr)
        return 1


def one_line(exc: Exception) -> str:
    """A foreign exception as one line; a database without tables says what to run."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if "no such table" in first or ("relation" in first and "does not exist" in first):
        return f"the database has no citymail tables yet ({first}): run `citymail init`"
    return f"{type(exc).__name__}: {first}"


if __name__ == "__main__":
    sys.exit(main())
