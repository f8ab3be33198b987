"""Score parse_bounce against a corpus folder with a MANIFEST.tsv.

Usage: ``python -m mailer.bounces.accuracy /work/shared/corpus/bounces``

Prints the share of files with expected addresses whose parsed addresses are exactly those,
the share of classified files (permanent / temporary / not_bounce / feedback_report) with
the right verdict, and every file still wrong with what was found against what was expected.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailer.bounces.parse import parse_bounce
from mailer.bounces.report import BounceReport

CLASSES = ("permanent", "temporary", "not_bounce", "feedback_report")


@dataclass(frozen=True, slots=True)
class Miss:
    """One file whose parse disagrees with the manifest."""

    file: str
    what: str
    got: str
    expected: str


def read_manifest(folder: Path) -> list[dict[str, str]]:
    """Rows of ``folder/MANIFEST.tsv`` as dicts keyed by its header line."""
    with (folder / "MANIFEST.tsv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def class_ok(expected_class: str, report: BounceReport) -> bool:
    """Does the report give the verdict the manifest's class calls for?"""
    if expected_class == "permanent":
        return report.permanent is True
    if expected_class == "temporary":
        return report.permanent is False
    if expected_class == "feedback_report":
        return report.permanent is None and report.complaint
    if expected_class == "not_bounce":
        return report.permanent is None and not report.is_bounce
    raise ValueError(f"not a scored class: {expected_class!r}; expected one of {CLASSES}")


def verdict(report: BounceReport) -> str:
    """A short text for what the report says, for the list of misses."""
    return f"kind={report.kind} permanent={report.permanent} complaint={report.complaint}"


def score(folder: Path) -> tuple[tuple[int, int], tuple[int, int], list[Miss]]:
    """Return ((address hits, total), (class hits, total), misses) for one corpus folder."""
    address_hits = address_total = class_hits = class_total = 0
    misses: list[Miss] = []
    for row in read_manifest(folder):
        expected_addresses = row["expected_addresses"].split()
        expected_class = row["expected_class"]
        if not expected_addresses and expected_class not in CLASSES:
            continue
        report = parse_bounce((folder / row["file"]).read_bytes())
        if expected_addresses:
            address_total += 1
            wanted = sorted({a.lower() for a in expected_addresses})
            if sorted(report.addresses) == wanted:
                address_hits += 1
            else:
                misses.append(
                    Miss(row["file"], "addresses", " ".join(report.addresses), " ".join(wanted))
                )
        if expected_class in CLASSES:
            class_total += 1
            if class_ok(expected_class, report):
                class_hits += 1
            else:
                misses.append(Miss(row["file"], "class", verdict(report), expected_class))
    return (address_hits, address_total), (class_hits, class_total), misses


def _percent(hits: int, total: int) -> str:
    return f"{100 * hits / total:.1f}% ({hits}/{total})" if total else "n/a (0 files)"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the two scores and the misses; exit status 0 (scores are not a pass/fail)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("folder", type=Path, help="corpus folder holding MANIFEST.tsv")
    args = parser.parse_args(argv)
    if not (args.folder / "MANIFEST.tsv").is_file():
        parser.error(f"{args.folder}/MANIFEST.tsv not found; pass the bounces corpus folder")
    addresses, classes, misses = score(args.folder)
    print(f"addresses exactly right: {_percent(*addresses)}")
    print(f"classification right:    {_percent(*classes)}")
    if misses:
        print("still wrong:")
        for miss in misses:
            got = miss.got or "-"
            print(f"  {miss.file}  [{miss.what}]  got: {got}  expected: {miss.expected}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
