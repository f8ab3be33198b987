"""Shared pieces of the benchmarks: free ports, a citymail server, a bare aiosmtpd server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def need_tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists()
                                  else None)
    if path is None:
        sys.exit(f"{name} not found: apt-get install postfix (only its tools are used; "
                 "the postfix daemon is never started)")
    return path


def citymail_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYMAIL_")}
    env.update({
        "CITYMAIL_DATABASE_URL": f"sqlite:///{tmp / 'citymail.db'}",
        "CITYMAIL_VAR_DIR": str(tmp / "var"),
        "CITYMAIL_RELAY_URL": f"outbox:{tmp / 'outbox'}",
        "CITYMAIL_SMTP_PORT": str(free_port()),
        "CITYMAIL_SECRET_KEY": "bench-secret-key-0123456789abcdef",
    })
    env.update(extra)
    return env


def citymail(env: dict[str, str], *args: str) -> str:
    return subprocess.run([str(BIN / "citymail"), *args], env=env, check=True,
                          capture_output=True, text=True, cwd=ROOT).stdout


class Proc:
    """A background process that is stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None,
                 log: Path | None = None) -> None:
        self.log = log or Path(tempfile.mkstemp(suffix=".log")[1])
        self._out = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()


def median(values: list[float]) -> float:
    return statistics.median(values)
