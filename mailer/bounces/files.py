"""Bounce files on disk: the JSON contract of ``citymail bounces parse FILE... --json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailer.bounces.parse import parse_bounce


def bounce_result_json(path: Path) -> dict[str, Any]:
    """Parse one stored message and return ``{"file", "addresses", "permanent"}``.

    The CLI prints this dict as one JSON object per line and per file.  Reading the file
    may raise ``OSError``; parsing never raises.
    """
    report = parse_bounce(Path(path).read_bytes())
    return {"file": str(path), "addresses": list(report.addresses), "permanent": report.permanent}
