"""Every message of the shared inbound corpus, posted to a test list, has a clear outcome.

Where the corpus manifest states an expectation, the outcome matches it: auto-replies
(sisimai, RFC 3834) are never distributed, and a delivered copy keeps the subject and
every attachment type imap_tools found in the original (its ``*.expected.json``).
"""

from __future__ import annotations

import csv
import json
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from listservs.corpus_report import Report, corpus_files, main, run

INBOUND = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "inbound"
pytestmark = pytest.mark.skipif(not INBOUND.is_dir(), reason="shared corpus not present")


@pytest.fixture(scope="module")
def report() -> Report:
    return run(INBOUND)


def manifest() -> dict[str, str]:
    with (INBOUND / "MANIFEST.tsv").open(encoding="utf-8") as fh:
        return {row["file"]: row["expected"] for row in csv.DictReader(fh, delimiter="\t")}


def _words(text: str) -> str:
    return re.sub(r"[\W_]", "", text)


def test_every_message_has_an_outcome_and_none_crashes(report: Report) -> None:
    assert len(report.outcomes) == len(corpus_files(INBOUND)) > 200
    assert [o for o in report.outcomes if o.action == "crashed"] == []
    assert all(o.reasons for o in report.outcomes if o.action != "accept")
    counts = report.counts()
    assert counts["accept"] > 0.9 * len(report.outcomes)


def test_auto_replies_the_manifest_names_are_never_distributed(report: Report) -> None:
    by_file = {o.file: o for o in report.outcomes}
    vacations = [f for f, e in manifest().items() if e.startswith("sisimai: vacation")]
    assert vacations
    for name in vacations:
        assert by_file[name].action == "hold", name
        assert by_file[name].reasons[0].startswith("sent automatically")


def sidecars() -> list[str]:
    return sorted(p.name.removesuffix(".expected.json")
                  for p in INBOUND.glob("*.expected.json")) if INBOUND.is_dir() else []


@pytest.mark.parametrize("stem", sidecars())
def test_a_delivered_copy_keeps_what_imap_tools_found(report: Report, stem: str) -> None:
    expected = json.loads((INBOUND / f"{stem}.expected.json").read_text(encoding="utf-8"))
    outcome = next(o for o in report.outcomes if o.file == f"{stem}.eml")
    if outcome.action != "accept":  # held as machine-sent (Precedence: junk, a DSN)
        assert outcome.reasons[0].startswith("sent automatically"), outcome.reasons
        return
    assert outcome.body is not None
    subject = str(message_from_bytes(outcome.body, policy=policy.default)["Subject"] or "")
    assert _words(expected["subject"]) in _words(subject)
    # compat32: policy.default cannot split a multipart whose unquoted boundary holds "="
    kinds = [p.get_content_type()
             for p in message_from_bytes(outcome.body, policy=policy.compat32).walk()]
    for attachment in expected["attachments"]:
        assert attachment["content_type"] in kinds, attachment["filename"]


def test_the_command_prints_counts_and_reasons(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("sisimai__rfc3834-01.eml", "flanker__russian-attachment-yahoo.eml",
                 "cpython__msg_40.txt"):  # an auto-reply, yahoo.com (p=reject), HTML only
        (tmp_path / name).write_bytes((INBOUND / name).read_bytes())
    assert main([str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"] == {"accept": 2, "hold": 1, "reject": 0, "discard": 0, "crashed": 0}
    assert data["reasons"] == {"hold": {"sent automatically": 1}}
    assert data["delivered_notes"] == {
        "DMARC p=reject: From rewritten": 1,
        "text/plain alternative added to an HTML-only post": 1}
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("3 messages: 2 accept, 1 hold")
    assert main(["/no/such/folder"]) == 2
