"""Post every message of a corpus folder to a test list and count what happens.

    python -m listservs.corpus_report /work/shared/corpus/inbound [--json] [--non-members]

Each message goes through the real posting pipeline (``listservs.posting.plan_post``:
policy, content filter, text alternative, DMARC mitigation, decoration) as a post to a
test list, by a member unless ``--non-members``. DNS is never asked: the DMARC policies of
the few big mail domains found in the corpus are built in (:data:`KNOWN_DMARC`). The
test list is a default list except that ``implicit_destination`` accepts, since these
messages were addressed elsewhere (otherwise every one would be held for that reason).

Bare TNEF blobs (``*.tnef``) are posted as a winmail.dat attachment; README, manifest
and ``*.json`` sidecars are skipped. A message that makes the pipeline raise is counted
as ``crashed`` with the error: the report itself never stops.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path

from listservs.facts import Membership, poster_address
from listservs.lists import ListInfo
from listservs.post_content import PostLookups
from listservs.posting import PostPlan, plan_post
from mailer.dmarc_policy import DmarcPolicies, static_txt
from mailer.settings import Settings

__all__ = [
    "KNOWN_DMARC",
    "TEST_LIST",
    "Outcome",
    "Report",
    "corpus_files",
    "load_message",
    "main",
    "post_one",
    "run",
]

KNOWN_DMARC = {
    "_dmarc.yahoo.com": "v=DMARC1; p=reject; pct=100",
    "_dmarc.aol.com": "v=DMARC1; p=reject; pct=100",
    "_dmarc.gmail.com": "v=DMARC1; p=none; sp=quarantine",
    "_dmarc.outlook.com": "v=DMARC1; p=none",
    "_dmarc.hotmail.com": "v=DMARC1; p=none",
}
"""Published policies of the large providers in the corpus, as of 2026 (no DNS needed)."""

TEST_LIST = ListInfo(
    id=1, name="corpus-test", kind="list", display_name="Corpus Test list",
    short_name="Corpus", description="", list_id=None, announce_only=False,
    delivery="personalised", footer="", config={"policy": {"implicit_destination": "accept"}})
FOOTER_MARK = b"Corpus Test list mailing list"
_ACCEPTED = "implicit destination"  # the test list accepts it (see the docstring)
SKIPPED_SUFFIXES = (".json", ".md", ".tsv")
NOW = datetime(2026, 11, 26, tzinfo=UTC)


@dataclass(frozen=True)
class Outcome:
    file: str
    action: str  # accept | hold | reject | discard | crashed
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what was done to a delivered copy (DMARC, filter, text)
    body: bytes | None = field(default=None, repr=False, compare=False)


@dataclass
class Report:
    outcomes: list[Outcome]

    def counts(self) -> dict[str, int]:
        found = Counter(o.action for o in self.outcomes)
        return {a: found.get(a, 0) for a in ("accept", "hold", "reject", "discard", "crashed")}

    def reasons(self) -> dict[str, dict[str, int]]:
        by: dict[str, Counter[str]] = {}
        for o in self.outcomes:
            if o.action != "accept":
                for r in [r for r in o.reasons if not r.startswith(_ACCEPTED)] or ["?"]:
                    by.setdefault(o.action, Counter())[_reason_kind(r)] += 1
        return {a: dict(c.most_common()) for a, c in by.items()}

    def notes(self) -> dict[str, int]:
        return dict(Counter(n for o in self.outcomes for n in o.notes).most_common())

    def to_json(self) -> dict[str, object]:
        return {"counts": self.counts(), "reasons": self.reasons(), "delivered_notes":
                self.notes(), "messages": [
                    {k: v for k, v in asdict(o).items() if k != "body"}
                    for o in self.outcomes]}


def _reason_kind(reason: str) -> str:
    """A reason without its per-message details, for counting."""
    general = re.sub(r"\S+@\S+", "SENDER", re.sub(r"\d+", "N", reason))
    general = re.split(r" \(|: ", general, maxsplit=1)[0]
    return general.strip()[:120]


def corpus_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and not p.name.endswith(SKIPPED_SUFFIXES))


def load_message(path: Path) -> bytes:
    """The message in *path*; a bare TNEF blob becomes a winmail.dat attachment."""
    data = path.read_bytes()
    if path.suffix != ".tnef":
        return data
    blob = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (b"From: Pat <pat@fresno.gov>\r\nSubject: minutes\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="w"\r\n\r\n'
            b"--w\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nMinutes attached.\r\n"
            b'--w\r\nContent-Type: application/ms-tnef; name="winmail.dat"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + blob + b"--w--\r\n")


def _has_footer(body: bytes) -> bool:
    for part in message_from_bytes(body, policy=policy.compat32).walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and FOOTER_MARK in payload:
            return True
    return False


def _notes(plan: PostPlan, raw: bytes, lookups: PostLookups) -> tuple[str, ...]:
    notes = []
    body = plan.body or b""
    if lookups.dmarc_policy in ("reject", "quarantine"):
        notes.append(f"DMARC p={lookups.dmarc_policy}: From rewritten")
    head = body[:body.find(b"\r\n\r\n")]
    if b"X-Content-Filtered-By:" in head:
        notes.append("content filtered")
    if not _has_footer(body):
        notes.append("footer not added (damaged MIME): body sent as received")
    if b"multipart/alternative; boundary=\"=_citymail_alt_" in body:
        notes.append("text/plain alternative added to an HTML-only post")
    return tuple(notes)


def _envelope_sender(msg: Message, sender: str | None) -> str:
    """The MAIL FROM the message came with: its Return-Path (the MTA's record), else From."""
    path = str(msg.get("Return-Path") or "").strip()
    if path:
        return path.strip("<>").strip()  # "<>" is the null sender of bounces and auto-replies
    return sender or "corpus-sender@example.org"


def post_one(raw: bytes, *, name: str, dmarc: DmarcPolicies, settings: Settings,
             members: bool = True, info: ListInfo = TEST_LIST) -> Outcome:
    """What the posting pipeline does with one message. Never raises."""
    try:
        msg = message_from_bytes(raw, policy=policy.compat32)
        sender = poster_address(msg, envelope_sender="corpus-sender@example.org")
        domain = (sender or "").rpartition("@")[2]
        lookups = PostLookups(dmarc.policy_for(domain) if domain else None)
        plan = plan_post(raw, info=info, settings=settings,
                         envelope_sender=_envelope_sender(msg, sender),
                         lookup=lambda _s: Membership(is_member=members),
                         seen=lambda _m: False, now=NOW, lookups=lookups)
    except Exception as exc:  # the report must go on, and say what broke
        return Outcome(name, "crashed", (f"{type(exc).__name__}: {exc}"[:300],))
    notes = _notes(plan, raw, lookups) if plan.action == "accept" else ()
    return Outcome(name, plan.action, plan.reasons, notes, plan.body)


def run(directory: Path, *, members: bool = True) -> Report:
    settings = Settings(base_url="https://lists.cacities.org", secret_keys=("corpus-report",))
    dmarc = DmarcPolicies(static_txt(KNOWN_DMARC))
    return Report([post_one(load_message(p), name=p.name, dmarc=dmarc, settings=settings,
                            members=members) for p in corpus_files(directory)])


def _print_text(report: Report) -> None:
    counts = report.counts()
    print(f"{sum(counts.values())} messages: "
          + ", ".join(f"{n} {a}" for a, n in counts.items() if n))
    for action, reasons in report.reasons().items():
        print(f"\n{action}:")
        for reason, n in reasons.items():
            print(f"  {n:>4}  {reason}")
    if report.notes():
        print("\ndelivered, changed beyond decoration:")
        for note, n in report.notes().items():
            print(f"  {n:>4}  {note}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m listservs.corpus_report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--non-members", action="store_true",
                        help="post as non-members (the default posts as members)")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        print(f"corpus_report: error: {args.directory} is not a folder", file=sys.stderr)
        return 2
    logging.disable(logging.WARNING)  # "footer not added" per broken message: in the counts
    try:
        report = run(args.directory, members=not args.non_members)
    finally:
        logging.disable(logging.NOTSET)
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=1))
    else:
        _print_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
