"""Private servers that tests may kill: Redis, a RabbitMQ node and a PostgreSQL cluster,
each on free ports in its own folder, plus the lookup of outside tools.

The shared services on 5432/6379/5672 belong to everyone's test runs, so anything that is
restarted is a private instance.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil

__all__ = ["PrivatePostgres", "PrivateRabbit", "PrivateRedis", "need_tool", "tool",
           "wait_port"]


def server_port() -> int:
    """A free port *below* the kernel's ephemeral range, for servers this suite kills and
    restarts on the same port.  In the ephemeral range, a client reconnecting in a loop to
    the dead server's port can be given that very port as its local one and connect to
    itself (TCP simultaneous open), and the restarted server then fails with EADDRINUSE:
    seen with RabbitMQ in CI."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10_000, max(10_001, low))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def tool(name: str) -> str | None:
    """A Postfix/swaks/server binary, also where Debian puts it outside PATH."""
    for path in (shutil.which(name), f"/usr/sbin/{name}"):
        if path and Path(path).exists():
            return path
    return None


def need_tool(name: str) -> str:
    """The tool's path; a missing one skips the test, or fails it in CI
    (CITYMAIL_REQUIRE_SERVICES=1, set by .ci/run)."""
    import pytest

    path = tool(name)
    if path:
        return path
    message = f"{name} is not installed (apt-get install postfix swaks redis-server ...)"
    if os.environ.get("CITYMAIL_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (CITYMAIL_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def wait_port(port: int, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


# -- private servers --------------------------------------------------------------------
class _Daemon:
    """A server process in its own session, killed by its id only."""

    proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def _signal_group(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(60)


class PrivateRedis(_Daemon):
    """redis-server on a free port without persistence: a kill -9 loses every queue."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = server_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self._spawn([tool("redis-server") or "redis-server", "--port", str(self.port),
                     "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", str(self.tmp)], self.tmp / "redis.log")
        wait_port(self.port, timeout=20)
        return self

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)

    def stop(self) -> None:
        self._signal_group(signal.SIGTERM)


class PrivateRabbit(_Daemon):
    """A private RabbitMQ node (own name, ports, Mnesia and log folders); ~5 s to start."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        tmp.chmod(0o777)  # the server drops to the rabbitmq user
        self.port = server_port()
        self.dist_port = server_port()
        self.name = f"citymail-{os.getpid()}-{self.port}@localhost"
        (tmp / "plugins").write_text("[].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.tmp / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.tmp / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.tmp / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.tmp / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self.tmp / "pid"),
        })
        return env

    def start(self, timeout: float = 60.0) -> PrivateRabbit:
        import pika

        logging.getLogger("pika").setLevel(logging.CRITICAL)  # refusals while it boots
        # The distribution port is the node's own business (clients use self.port): a fresh
        # one at every start, because a port picked earlier may since have been handed out
        # as some client connection's local port (seen: dist_port_already_used).
        self.dist_port = server_port()
        self._spawn([tool("rabbitmq-server") or "rabbitmq-server"], self.tmp / "out.log",
                    env=self._env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the port opens before AMQP logins work
            try:
                pika.BlockingConnection(pika.URLParameters(self.url)).close()
                return self
            except Exception:
                time.sleep(0.25)
            if self.proc is not None and self.proc.poll() is not None:
                # Right after a kill -9 the old listener may still hold the port: again.
                time.sleep(1.0)
                self.dist_port = server_port()
                self._spawn([tool("rabbitmq-server") or "rabbitmq-server"],
                            self.tmp / "out.log", env=self._env())
        raise AssertionError(f"private RabbitMQ did not start:\n{self._log_tail()}")

    def _beam(self) -> psutil.Process | None:
        try:
            return psutil.Process(int((self.tmp / "pid").read_text().strip()))
        except (OSError, ValueError, psutil.Error):
            return None

    def kill(self) -> None:
        """kill -9 of the Erlang VM (it runs as the rabbitmq user, outside our group)."""
        beam = self._beam()
        if beam is not None:
            beam.kill()
            beam.wait(30)
        self._signal_group(signal.SIGKILL)

    def stop(self) -> None:
        beam = self._beam()
        if beam is not None:
            beam.terminate()
            try:
                beam.wait(30)
            except psutil.TimeoutExpired:
                beam.kill()
        self._signal_group(signal.SIGTERM)

    def _log_tail(self) -> str:
        return (self.tmp / "out.log").read_text(errors="replace")[-2000:]


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb, trust) that can be crashed and restarted."""

    def __init__(self, tmp: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise FileNotFoundError("PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
        self.bin = bins[-1]
        self.dir = tmp
        self.port = server_port()
        self.data = tmp / "data"
        # initdb and postgres refuse to run as root: run them as the postgres user.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/citymail"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> PrivatePostgres:
        if self.prefix:
            shutil.chown(self.dir, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  "postgres", "-E", "UTF8", "--no-sync")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", "citymail")
        return self

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
                  "-w", "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1",
                  "start")

    def crash(self) -> None:
        """Immediate shutdown: no checkpoint, every connection cut, WAL replay on start."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                  "stop")

    def stop(self) -> None:
        subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m",
                        "fast", "-w", "stop"], capture_output=True, timeout=120)
