"""Every message of the shared bounce corpus parses to what its MANIFEST.tsv says.

The corpus lives next to the repository (``../shared/corpus``), locally and in CI.  If it is
missing these tests fail: a silently skipped corpus would hide every regression.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import pytest

from mailer.bounces import BounceReport, parse_bounce

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
BOUNCES = CORPUS / "bounces"
MANIFEST = BOUNCES / "MANIFEST.tsv"

# Rows where the manifest's answer comes from a source that could not express ours, and we
# are confident ours is right.  Keep this short and explain every entry.
DISAGREEMENTS = {
    "flufl.bounce__yahoo_01.txt": (
        "the notice carries (#4.4.1), a transient connection failure after which qmail gave"
        " up; like a DSN with Status 4.x.x we report it temporary.  flufl.bounce can only mark"
        " warnings temporary, so its table calls every other failure permanent"
    ),
    "flufl.bounce__simple_44.txt": (
        "the notice says '4.4.4 Temporary server error. Please try again later'; a 4.x.x"
        " status is temporary (as sisimai-derived rows such as lhost-v5sendmail-01 expect too)."
        "  flufl.bounce's table marks it permanent only because its detector has no"
        " temporary verdict"
    ),
}


def _manifest_rows() -> list[dict[str, str]]:
    if not MANIFEST.is_file():
        return []
    with MANIFEST.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _params() -> list[object]:
    rows = _manifest_rows()
    if not rows:
        # Parametrising over nothing would skip; one failing case says what is wrong instead.
        return [pytest.param(None, id="corpus-missing")]
    params: list[object] = []
    for row in rows:
        reason = DISAGREEMENTS.get(row["file"])
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(row, id=row["file"], marks=marks))
    return params


def _parse(row: dict[str, str]) -> BounceReport:
    raw = (BOUNCES / row["file"]).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == row["sha256"], f"{row['file']} changed on disk"
    return parse_bounce(raw)


def test_the_corpus_is_next_to_the_repository() -> None:
    assert MANIFEST.is_file(), (
        f"bounce corpus not found at {BOUNCES}; check out the shared corpus next to the"
        " repository (../shared/corpus), as CI does"
    )


@pytest.mark.parametrize("row", _params())
def test_a_user_sees_what_the_manifest_expects(row: dict[str, str] | None) -> None:
    assert row is not None, f"bounce corpus missing: {MANIFEST} does not exist"
    report = _parse(row)
    expected_class = row["expected_class"]

    if row["expected_addresses"]:
        wanted = {a.lower() for a in row["expected_addresses"].split()}
        assert set(report.addresses) == wanted

    if expected_class == "permanent":
        assert report.is_bounce and report.permanent is True
    elif expected_class == "temporary":
        assert report.is_bounce and report.permanent is False
    elif expected_class == "not_bounce":
        assert report.permanent is None and not report.is_bounce
    elif expected_class == "feedback_report":
        assert report.kind == "complaint" and report.complaint and report.permanent is None
    elif expected_class == "mixed":
        # The manifest gives one status per recipient, both 5.x.x and 4.x.x.
        verdicts = {f.permanent for f in report.failures}
        assert {True, False} <= verdicts
    elif expected_class == "sidecar":
        # JSON describing another file, not a message: it must not read as a bounce.
        assert not report.is_bounce and not report.complaint

    recipients = re.match(r"(\d+) recipient\(s\)", row["notes"])
    if recipients and expected_class in ("permanent", "temporary", "mixed"):
        assert len(report.addresses) == int(recipients.group(1))


def test_policy_rejections_in_the_corpus_never_count_as_member_failures() -> None:
    rows = {row["file"]: row for row in _manifest_rows()}
    assert rows, f"bounce corpus missing: {MANIFEST} does not exist"
    for name in (
        "sisimai__lhost-amazonses-08.eml",  # 5.7.9
        "sisimai__lhost-barracuda-01.eml",  # content rejected as spam
        "sisimai__lhost-dragonfly-01.eml",  # DMARC, non-standard notice
        "sisimai__lhost-qmail-09.eml",  # banned sending IP, qmail notice
        "sisimai__rhost-franceptt-06.eml",  # "Client host blocked for spamming issues"
        "sisimai__rhost-microsoft-04.eml",  # 5.7.509 DMARC
    ):
        assert _parse(rows[name]).policy, name
    for name in ("sisimai__lhost-postfix-01.eml", "sisimai__rhost-apple-01.eml"):
        assert not _parse(rows[name]).policy, name


def test_dsn_statuses_are_reported_per_address() -> None:
    rows = {row["file"]: row for row in _manifest_rows()}
    assert rows, f"bounce corpus missing: {MANIFEST} does not exist"
    report = _parse(rows["sisimai__lhost-office365-07.eml"])
    assert report.kind == "dsn"
    assert report.statuses == {"otsu-sakaba-hunter-neko-nyaaaaaaan@ezweb.ne.jp": "5.1.351"}
    mixed = _parse(rows["sisimai__rfc3464-35.eml"])
    assert sorted(mixed.statuses.values()) == ["4.0.0", "5.0.0", "5.0.0"]
