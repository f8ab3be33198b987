"""Gateway accept rate under Postfix's smtp-source, next to a bare aiosmtpd in the same run.

    .venv/bin/python bench/gateway.py [--messages 10000] [--sessions 20] [--runs 3]

Every accepted message must be durable: after each citymail run the inbound rows are
counted and must equal the messages sent.  Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import BIN, Proc, citymail, citymail_env, free_port, median, need_tool, wait_port


def blast(source: str, port: int, *, messages: int, sessions: int, size: int) -> float:
    start = time.perf_counter()
    subprocess.run([source, "-d", "-s", str(sessions), "-m", str(messages), "-l", str(size),
                    "-f", "alice@example.org", "-t", "city-clerks@lists.cacities.org",
                    f"127.0.0.1:{port}"], check=True, capture_output=True)
    return time.perf_counter() - start


def bare_run(source: str, args: argparse.Namespace) -> float:
    port = free_port()
    proc = Proc([str(BIN / "python"), str(Path(__file__).parent / "bare_aiosmtpd.py"), str(port)])
    try:
        wait_port(port)
        return args.messages / blast(source, port, messages=args.messages,
                                     sessions=args.sessions, size=args.size)
    finally:
        proc.stop()


def citymail_run(source: str, args: argparse.Namespace) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        env = citymail_env(Path(tmp))
        citymail(env, "init")
        citymail(env, "members", "add", "alice@example.org", "--name", "Alice",
                 "--city", "Sacramento", "--role", "City Clerk")
        port = int(env["CITYMAIL_SMTP_PORT"])
        proc = Proc([str(BIN / "citymail"), "serve"], env=env)
        try:
            wait_port(port)
            seconds = blast(source, port, messages=args.messages, sessions=args.sessions,
                            size=args.size)
        finally:
            proc.stop()
        with sqlite3.connect(Path(tmp) / "citymail.db") as db:
            stored = db.execute("SELECT count(*) FROM inbound").fetchone()[0]
        return args.messages / seconds, stored


def measure(args: argparse.Namespace) -> dict[str, object]:
    """``args.runs`` runs of bare aiosmtpd then citymail, side by side; medians and ratio."""
    source = need_tool("smtp-source")
    bare, ours, stored_ok = [], [], True
    for run in range(args.runs):
        bare.append(bare_run(source, args))
        rate, stored = citymail_run(source, args)
        ours.append(rate)
        stored_ok &= stored == args.messages
        print(f"run {run + 1}: bare aiosmtpd {bare[-1]:.0f} msg/s, citymail {rate:.0f} msg/s, "
              f"stored {stored}/{args.messages}", flush=True)
    return {
        "messages": args.messages, "sessions": args.sessions, "size": args.size,
        "bare_msgs_per_s": round(median(bare)), "citymail_msgs_per_s": round(median(ours)),
        "ratio": round(median(ours) / median(bare), 3), "all_stored": stored_ok,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    result = measure(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
