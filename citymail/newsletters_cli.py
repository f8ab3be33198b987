"""``citymail newsletters …``: issues (create, preview, test, schedule, cancel, pause,
resume, status, list, items) and feeds (add, poll, list).

Wired into ``citymail.cli.build_parser`` with ``add_newsletter_verbs(sub)``.  Every verb
opens its own engine and short transactions; mail is sent by ``citymail serve`` (its
clock claims due issues and hands queued copies to the workers), so these verbs never
need the broker.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path

from citymail.engines import command_engine as _engine
from citymail.output import print_json
from mailer.db import reading, utcnow, writing
from mailer.errors import InvalidInput
from mailer.settings import Settings

__all__ = ["add_bench_newsletter", "add_newsletter_verbs"]

Handler = Callable[[argparse.Namespace, Settings], int]


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read it as UTF-8 text: {exc}") from None


# -- issue verbs -----------------------------------------------------------------------------
def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    from newsletters import issues

    blocks = [_read(p) for p in args.block or []]
    text = _read(args.text) if args.text else None
    with _engine(settings) as engine, writing(engine) as conn:
        issue_id = issues.create_issue(conn, args.newsletter, subject=args.subject or "",
                                       blocks=blocks, text_version=text,
                                       preheader=args.preheader or "")
    print(f"citymail: issue #{issue_id} of {args.newsletter} created (draft)")
    return 0


def cmd_edit(args: argparse.Namespace, settings: Settings) -> int:
    from newsletters import issues

    with _engine(settings) as engine, writing(engine) as conn:
        issues.update_issue(conn, args.id, subject=args.subject, preheader=args.preheader,
                            blocks=[_read(p) for p in args.block] if args.block else None,
                            text_version=_read(args.text) if args.text else None)
    print(f"citymail: issue #{args.id} updated")
    return 0


def cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    from newsletters import issues
    from newsletters.preview import preview

    with _engine(settings) as engine, reading(engine) as conn:
        issue = issues.get_issue(conn, args.id)
        content = issues.issue_content(conn, issue, date=issue.send_at or utcnow())
    shown = preview(content, base_url=settings.base_url, zone=settings.timezone)
    out = shown.text if args.text else shown.html
    if args.out:
        Path(args.out).write_text(out, encoding="utf-8")
        print(f"citymail: preview of issue #{args.id} written to {args.out}")
    else:
        sys.stdout.write(out)
    return 0


def cmd_test(args: argparse.Namespace, settings: Settings) -> int:
    from newsletters.dispatch import send_test

    with _engine(settings) as engine:
        outbound_id = send_test(engine, settings, args.id, args.to)
    print(f"citymail: test copy of issue #{args.id} queued for {', '.join(args.to)} "
          f"(message #{outbound_id}; citymail serve delivers it)")
    return 0


def cmd_schedule(args: argparse.Namespace, settings: Settings) -> int:
    from newsletters import issues
    from newsletters.schedule import show_local

    zone = args.zone or settings.timezone
    with _engine(settings) as engine, writing(engine) as conn:
        if args.at.strip().lower() == "now":
            when = issues.schedule_now(conn, args.id, zone=zone)
        else:
            when = issues.schedule_issue(conn, args.id, args.at, zone=zone)
    print(f"citymail: issue #{args.id} scheduled for {show_local(when.send_at, zone)} "
          f"({when.send_at:%Y-%m-%d %H:%M} UTC)")
    return 0


def _simple(action: str) -> Handler:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        from newsletters import issues

        fn = {"cancel": issues.cancel_issue, "pause": issues.pause_issue,
              "resume": issues.resume_issue, "unschedule": issues.unschedule_issue}[action]
        with _engine(settings) as engine, writing(engine) as conn:
            result = fn(conn, args.id)
        detail = {"cancel": f"; {result} copies will not be sent",
                  "pause": f"; {result} copies wait", "resume": f"; {result} copies to go",
                  "unschedule": "; back to draft"}[action]
        done = {"cancel": "cancelled", "pause": "paused", "resume": "resumed",
                "unschedule": "unscheduled"}[action]
        print(f"citymail: issue #{args.id} {done}{detail}")
        return 0
    return run


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (nothing sent in the last minute)"
    return str(dt.timedelta(seconds=round(seconds)))


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from newsletters import issues

    with _engine(settings) as engine, reading(engine) as conn:
        status = issues.issue_status(conn, args.id)
    if args.json:
        print_json(status)
        return 0
    s = status
    print(f"#{s['id']} {s['newsletter']} \"{s['subject']}\": {s['state']}")
    if s["send_local"]:
        print(f"  scheduled for {s['send_local'].replace('T', ' ')} {s['send_zone']}")
    if s["total"]:
        print(f"  {s['sent']}/{s['total']} sent ({s['percent']}%), "
              f"{s['pending'] + s['sending']} queued, {s['paused']} paused, "
              f"{s['deferred']} deferred, {s['failed']} failed, {s['cancelled']} cancelled; "
              f"{s['complaints']} complaint(s)")
        print(f"  {s['rate_per_s']}/s over the last minute; ETA {_duration(s['eta_seconds'])}")
    if s["last_error"]:
        print(f"  last error: {s['last_error']}")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from newsletters import issues

    with _engine(settings) as engine, reading(engine) as conn:
        rows = issues.list_issues(conn, args.newsletter)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no issues yet (create one: citymail newsletters issue create NEWSLETTER)")
    for r in rows:
        when = (r["send_local"] or "").replace("T", " ")
        print(f"#{r['id']:<5} {r['newsletter']:<14} {r['state']:<10} {when:<17} {r['subject']}")
    return 0


def cmd_items(args: argparse.Namespace, settings: Settings) -> int:
    from newsletters import issues

    with _engine(settings) as engine:
        if args.order or args.drop or args.restore:
            with writing(engine) as conn:
                items = issues.arrange_items(conn, args.id, order=args.order or [],
                                             drop=args.drop or [], restore=args.restore or [])
        else:
            with reading(engine) as conn:
                items = issues.issue_items(conn, issues.get_issue(conn, args.id))
    rows = [{"id": i.id, "title": i.title, "link": i.link, "source": i.source,
             "published": i.published.isoformat() if i.published else None} for i in items]
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            print(f"{r['id']:>6}  {(r['published'] or '')[:10]:<10}  {r['title']}")
    return 0


# -- feeds -----------------------------------------------------------------------------------
def cmd_feeds_add(args: argparse.Namespace, settings: Settings) -> int:
    from newsletters.feedstore import add_feed

    with _engine(settings) as engine, writing(engine) as conn:
        feed_id = add_feed(conn, args.newsletter, args.url)
    print(f"citymail: feed #{feed_id} added to {args.newsletter}; "
          "`citymail newsletters feeds poll` reads it")
    return 0


def cmd_feeds_poll(args: argparse.Namespace, settings: Settings) -> int:
    from newsletters.feedstore import poll_feeds

    with _engine(settings) as engine:
        outcomes = poll_feeds(engine, force=args.all)
    if args.json:
        print_json([o.__dict__ for o in outcomes])
        return 0
    if not outcomes:
        print("no feed is due (use --all to poll every feed now)")
    for o in outcomes:
        detail = o.error if o.error else f"{o.new_items} new item(s)"
        print(f"#{o.feed_id} {o.url}: {o.status}; {detail}")
    return 0


def cmd_feeds_list(args: argparse.Namespace, settings: Settings) -> int:
    from newsletters.feedstore import list_feeds

    with _engine(settings) as engine, reading(engine) as conn:
        rows = list_feeds(conn)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no feeds (add one: citymail newsletters feeds add NEWSLETTER URL)")
    for r in rows:
        print(f"#{r['id']} {r['newsletter']:<14} {r['status']:<6} {r['items']:>4} items  "
              f"{r['url']}")
        print(f"     last poll {r['last_polled_at'] or 'never'}; next {r['next_poll_at']}"
              + (f"; {r['failures']} failure(s): {r['last_error']}" if r["last_error"] else ""))
    return 0


# -- the parser ------------------------------------------------------------------------------
def _id(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", type=int, metavar="ID", help="issue number")


def add_newsletter_verbs(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``citymail newsletters …`` to the top-level subparsers."""
    top = sub.add_parser("newsletters", help="newsletter issues and feeds").add_subparsers(
        dest="newsletters_verb", required=True, metavar="WHAT")
    issue = top.add_parser("issue", help="create, preview, schedule and follow issues")
    verbs = issue.add_subparsers(dest="issue_verb", required=True, metavar="ACTION")

    s = verbs.add_parser("create", help="a new draft issue")
    s.add_argument("newsletter", metavar="NEWSLETTER", help="advocate or western-city")
    s.add_argument("--subject", required=True)
    s.add_argument("--block", action="append", metavar="FILE.md",
                   help="an editor's block in Markdown (repeat, in order)")
    s.add_argument("--text", metavar="FILE", help="your own plain-text version")
    s.add_argument("--preheader", help="the line mail clients show after the subject")
    s.set_defaults(func=cmd_create)

    s = verbs.add_parser("edit", help="change a draft or scheduled issue")
    _id(s)
    s.add_argument("--subject")
    s.add_argument("--block", action="append", metavar="FILE.md",
                   help="replace the blocks (repeat, in order)")
    s.add_argument("--text", metavar="FILE")
    s.add_argument("--preheader")
    s.set_defaults(func=cmd_edit)

    s = verbs.add_parser("preview", help="the issue as a subscriber would see it")
    _id(s)
    kind = s.add_mutually_exclusive_group()
    kind.add_argument("--html", action="store_true", help="HTML (the default)")
    kind.add_argument("--text", action="store_true", help="the plain-text version")
    s.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    s.set_defaults(func=cmd_preview)

    s = verbs.add_parser("test", help="send a [TEST] copy to named addresses")
    _id(s)
    s.add_argument("--to", action="append", required=True, metavar="ADDRESS")
    s.set_defaults(func=cmd_test)

    s = verbs.add_parser("schedule", help="send at a local time (or reschedule)")
    _id(s)
    s.add_argument("--at", required=True,
                   help="local wall time 'YYYY-MM-DD HH:MM' in CITYMAIL_TIMEZONE, or 'now'")
    s.add_argument("--zone", help="an IANA zone instead of CITYMAIL_TIMEZONE")
    s.set_defaults(func=cmd_schedule)

    for action, text in (("unschedule", "back to draft"),
                         ("cancel", "never send it (or stop sending it)"),
                         ("pause", "stop handing out copies; resume continues"),
                         ("resume", "send the copies still waiting, each once")):
        s = verbs.add_parser(action, help=text)
        _id(s)
        s.set_defaults(func=_simple(action))

    s = verbs.add_parser("status", help="progress, rate and ETA")
    _id(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    s = verbs.add_parser("list", help="all issues")
    s.add_argument("--newsletter")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)

    s = verbs.add_parser("items", help="the feed items an issue carries; reorder or drop them")
    _id(s)
    s.add_argument("--order", type=int, nargs="+", metavar="ITEM", help="put these first")
    s.add_argument("--drop", type=int, nargs="+", metavar="ITEM")
    s.add_argument("--restore", type=int, nargs="+", metavar="ITEM")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_items)

    feeds = top.add_parser("feeds", help="the RSS/Atom feeds of the newsletters")
    fverbs = feeds.add_subparsers(dest="feeds_verb", required=True, metavar="ACTION")
    s = fverbs.add_parser("add", help="register a feed for a newsletter")
    s.add_argument("newsletter", metavar="NEWSLETTER")
    s.add_argument("url", metavar="URL")
    s.set_defaults(func=cmd_feeds_add)
    s = fverbs.add_parser("poll", help="fetch the feeds that are due (conditional GET)")
    s.add_argument("--all", action="store_true", help="every feed, due or not")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_feeds_poll)
    s = fverbs.add_parser("list", help="feeds with their status and last error")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_feeds_list)


def cmd_bench_newsletter(args: argparse.Namespace, settings: Settings) -> int:
    from citymail.bench_newsletter import newsletter_bench

    print(json.dumps(newsletter_bench(subscribers=args.subscribers, relay=args.relay,
                                      threads=args.threads, runs=args.runs)))
    return 0


def add_bench_newsletter(bench: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``citymail bench newsletter`` to the ``bench`` subparsers."""
    s = bench.add_parser("newsletter", help="one personalised issue to N subscribers")
    s.add_argument("--subscribers", type=int, default=50_000)
    s.add_argument("--relay", required=True, help="smtp://HOST:PORT or outbox:DIR")
    s.add_argument("--threads", type=int, default=8)
    s.add_argument("--runs", type=int, default=1, help="issues to send; the median is printed")
    s.set_defaults(func=cmd_bench_newsletter)
