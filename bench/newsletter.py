"""Newsletter benchmark: one personalised issue to N subscribers through Postfix's smtp-sink.

    .venv/bin/python bench/newsletter.py [--subscribers 50000] [--runs 3] [--threads 8]

Starts smtp-sink (only that tool; never the postfix daemon) as the relay, then runs
``citymail.bench_newsletter.newsletter_bench`` (what ``citymail bench newsletter`` runs): a
throw-away installation, ``citymail serve`` as in production, the issue scheduled for now,
seconds from the clock's claim to the last recorded delivery.  Target: 50,000 in <= 30 s
(median).  The last line is JSON.  Set CITYMAIL_DATABASE_URL and CITYMAIL_BROKER_URL to
measure PostgreSQL with Redis or RabbitMQ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import Proc, free_port, need_tool, wait_port

from citymail.bench_newsletter import newsletter_bench

TARGET_SECONDS = 30.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subscribers", type=int, default=50_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args()
    port = free_port()
    sink = Proc([need_tool("smtp-sink"), "-u", "nobody", "-c", f"127.0.0.1:{port}", "1000"])
    try:
        wait_port(port)
        result = newsletter_bench(subscribers=args.subscribers,
                                  relay=f"smtp://127.0.0.1:{port}", threads=args.threads,
                                  runs=args.runs)
    finally:
        sink.stop()
    for n, seconds in enumerate(result["all_seconds"], 1):
        print(f"run {n}: {seconds:.2f} s ({args.subscribers / seconds:.0f} messages/s)",
              flush=True)
    scaled = result["seconds"] * 50_000 / args.subscribers
    print(f"median {result['seconds']:.2f} s; target for 50,000: {TARGET_SECONDS:.0f} s "
          f"({'met' if scaled <= TARGET_SECONDS else 'NOT met'}, {scaled:.1f} s scaled)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
