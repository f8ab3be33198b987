"""How the command prints data: ``--json`` output is indented, UTF-8, dates as ISO text."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

__all__ = ["print_json"]


def print_json(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str), file=out or sys.stdout)
