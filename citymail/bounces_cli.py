"""``citymail bounces show EMAIL [--json]``: every step of one person's bounce handling.

Events (date, list, kind, status code, diagnostic, the points each added and why), the
current score per subscription, delivery status, warnings sent, and the next action with
its time.  ``citymail.cli`` adds the verb with ``add_bounce_verbs``.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailer.settings import Settings

# The parser imports this module for every command: the database and bounce modules are
# imported when the verb runs, so that ``citymail --help`` stays quick.

__all__ = ["add_bounce_verbs", "cmd_bounces_show"]


def add_bounce_verbs(bounces: Any) -> None:
    """Add ``show`` to the ``citymail bounces`` sub-parsers."""
    s = bounces.add_parser("show", help="one person's bounces: events, scores, delivery, "
                           "warnings and the next step")
    s.add_argument("email")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bounces_show)


def _when(iso: str | None) -> str:
    return f"{iso[:16].replace('T', ' ')} UTC" if iso else "-"


def _describe(action: dict[str, Any]) -> str:
    when = _when(action["at"])
    if action["action"] == "warn":
        return f"warning {action['number']} of {action['of']} at {when}"
    if action["action"] == "remove":
        return f"removal at {when}"
    return (f"score halves to {action['score_after']:g} at {when} unless it bounces; "
            f"{action['bouncing_days_to_disable']} more bouncing day(s) would disable")


def _print_text(data: dict[str, Any]) -> None:
    print(f"{data['email']}{' (' + data['name'] + ')' if data['name'] else ''}"
          f"{'' if data['member_status'] == 'active' else ' [' + data['member_status'] + ']'}")
    for sub in data["subscriptions"]:
        print(f"  {sub['kind']:<10} {sub['name']:<32} {sub['status']:<7} "
              f"{sub['delivery_status']:<15} score {sub['score']:g}/{sub['threshold']:g}")
        if sub["disabled_at"] or sub["warnings_sent"]:
            print(f"{'':13}disabled {_when(sub['disabled_at'])}, {sub['warnings_sent']} "
                  f"warning(s) sent, last {_when(sub['last_warning_at'])}"
                  + (f", re-enabled {_when(sub['reenabled_at'])}" if sub["reenabled_at"]
                     else "")
                  + (f", removed {_when(sub['removed_at'])}" if sub["removed_at"] else ""))
        if sub["next_action"] is not None:
            print(f"{'':13}next: {_describe(sub['next_action'])}")
    print(f"events ({len(data['events'])}):" if data["events"] else "no bounce events")
    for e in data["events"]:
        text = " ".join((e["diagnostic"] or "").split())[:70]
        print(f"  {e['date']}  {e['list']:<28} {e['kind']:<9} {e['status'] or '-':<7} "
              f"+{e['points']:g}  {e['source']:<4} {text}"
              + (f"  ({e['why']})" if e["why"] != "counted" else ""))


def cmd_bounces_show(args: argparse.Namespace, settings: Settings) -> int:
    from mailer.bounce_view import bounce_view
    from mailer.db import make_engine, reading, utcnow

    engine = make_engine(settings)
    try:
        with reading(engine) as conn:
            data = bounce_view(conn, args.email, now=utcnow())
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        _print_text(data)
    return 0
