"""Every benchmark at full size, one after the other (``make bench``); ~15 minutes here.

Each script prints its own figures and ends with a JSON line; this collects those lines
into one JSON object at the end.  Run on an idle machine: the ratios are measured side
by side, but two cores shared with other work still move the absolute numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS: dict[str, list[str]] = {
    "gateway": ["gateway.py", "--messages", "10000", "--runs", "3"],
    "fanout_10k": ["fanout.py", "--members", "10000", "--runs", "3"],
    "latency_100": ["fanout.py", "--members", "100", "--runs", "5"],
    "fanout_100k": ["fanout.py", "--members", "100000", "--runs", "1"],
    "newsletter_50k": ["newsletter.py", "--subscribers", "50000", "--runs", "1"],
    "dkim": ["dkim_cost.py"],
    "faults": ["reliability.py", "faults"],
}


def main() -> int:
    results: dict[str, object] = {}
    failed = False
    for name, args in RUNS.items():
        print(f"== {name}: {' '.join(args)}", flush=True)
        proc = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]],
                              capture_output=True, text=True)
        print(proc.stdout, end="", flush=True)
        last = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
        try:
            results[name] = json.loads(last[0]) if last else None
        except json.JSONDecodeError:
            results[name] = None
        if proc.returncode != 0:
            failed = True
            print(f"{name} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}",
                  file=sys.stderr)
    print(json.dumps(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
