"""Delivery benchmark: one post to N members, next to a bare smtplib client, same run.

    .venv/bin/python bench/fanout.py [--members 10000] [--runs 3] [--threads 8]

Starts Postfix's smtp-sink (only that tool; never the postfix daemon) as the relay, then
for each run: `citymail bench fanout` in bulk and personalised mode, and a bare smtplib
client sending the same number of pre-built messages over reused connections at the same
concurrency.  Prints medians and the personalised/bare ratio; the last line is JSON.
Set CITYMAIL_DATABASE_URL and CITYMAIL_BROKER_URL to measure PostgreSQL with RabbitMQ.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import BIN, Proc, free_port, median, need_tool, wait_port

MESSAGE = ("From: Member 0 <member0@city0.example>\r\nTo: city-clerks@lists.cacities.org\r\n"
           "Subject: bench\r\nMessage-ID: <bench@example>\r\n\r\n" + "Text line\r\n" * 60).encode()


def bare_smtplib(port: int, count: int, threads: int) -> float:
    """Messages per second for pre-built messages, one transaction each, reused connections."""
    per_thread = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]

    def worker(n: int) -> None:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            for i in range(n):
                smtp.sendmail("city-clerks-bounces@lists.cacities.org", [f"m{i}@example.org"],
                              MESSAGE)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, per_thread))
    return count / (time.perf_counter() - start)


def citymail_fanout(port: int, members: int, mode: str, threads: int) -> dict:
    out = subprocess.run([str(BIN / "citymail"), "bench", "fanout", "--members", str(members),
                          "--mode", mode, "--relay", f"smtp://127.0.0.1:{port}",
                          "--threads", str(threads), "--posts", "3"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--members", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args()
    sink_bin = need_tool("smtp-sink")
    port = free_port()
    sink = Proc([sink_bin, "-u", "nobody", "-c", f"127.0.0.1:{port}", "1000"])
    bulk, personal, bare, rss = [], [], [], []
    try:
        wait_port(port)
        for run in range(args.runs):
            b = citymail_fanout(port, args.members, "bulk", args.threads)
            pz = citymail_fanout(port, args.members, "personalised", args.threads)
            rate = bare_smtplib(port, args.members, args.threads)
            bulk.append(b["seconds"])
            personal.append(pz["seconds"])
            bare.append(rate)
            rss.append(max(b["peak_rss_mb"], pz["peak_rss_mb"]))
            print(f"run {run + 1}: bulk {b['seconds']:.2f} s, personalised {pz['seconds']:.2f} s "
                  f"({args.members / pz['seconds']:.0f}/s), bare smtplib {rate:.0f}/s",
                  flush=True)
    finally:
        sink.stop()
    personal_rate = args.members / median(personal)
    print(json.dumps({
        "members": args.members, "threads": args.threads,
        "bulk_seconds": round(median(bulk), 3), "personalised_seconds": round(median(personal), 3),
        "personalised_per_s": round(personal_rate), "bare_smtplib_per_s": round(median(bare)),
        "personalised_vs_bare": round(personal_rate / median(bare), 3),
        "peak_rss_mb": max(rss),
    }))


if __name__ == "__main__":
    main()
