"""A real Postfix in front of the gateway, configured with deploy/postfix/main.cf.

A private Postfix instance (its own config, queue and data directories under a temporary
folder, an smtpd on a free loopback port) relays the list domain to citymail serve with
the maps `citymail postfix maps` writes.  The system's own Postfix, if any, is not
touched.  Skipped when Postfix is not installed (or we are not root, which its master
needs), unless CITYMAIL_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT, Server, Sink, base_env, cli, free_port

from citymail import admin
from mailer.db import make_engine, writing
from mailer.league import load_league
from mailer.people import add_member
from mailer.settings import load_settings

DOMAIN = "lists.cacities.org"
LIST = f"city-clerks@{DOMAIN}"
MEMBERS = ["clerk@sacramento.example", "clerk@fresno.example"]
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
# Loopback only, no local delivery, no DNS: everything else comes from deploy/postfix.
INSTANCE = """
queue_directory = {d}/spool
data_directory = {d}/data
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
myhostname = mx.citymail.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
mynetworks = 192.0.2.1/32
alias_maps =
alias_database =
local_recipient_maps =
smtpd_tls_security_level = none
smtp_tls_security_level = none
"""
MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def need_postfix() -> None:
    missing = ("Postfix is not installed" if not Path(POSTFIX).exists() else
               "a Postfix instance needs root" if os.geteuid() != 0 else None)
    if missing is None:
        return
    if os.environ.get("CITYMAIL_REQUIRE_SERVICES") == "1":
        pytest.fail(missing + " (CITYMAIL_REQUIRE_SERVICES=1)")
    pytest.skip(missing)


class Postfix:
    """A private Postfix instance: ``postfix -c DIR start`` … ``stop``."""

    def __init__(self, folder: Path, port: int) -> None:
        self.dir = folder
        self.etc = folder / "etc"
        self.port = port

    def configure(self, maps: Path) -> None:
        self.etc.mkdir(parents=True)
        (self.dir / "spool").mkdir()
        (self.dir / "data").mkdir()
        shutil.chown(self.dir / "data", user="postfix")
        documented = (ROOT / "deploy" / "postfix" / "main.cf").read_text()
        main = documented.replace("/etc/postfix/citymail", str(maps))
        (self.etc / "main.cf").write_text(main + INSTANCE.format(d=self.dir))
        (self.etc / "master.cf").write_text(MASTER.format(port=self.port))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([POSTFIX, "-c", str(self.etc), *args], capture_output=True,
                              text=True, timeout=60)

    def start(self) -> None:
        done = self.run("start")
        deadline = time.monotonic() + 15
        while done.returncode == 0 and time.monotonic() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as smtp:
                    smtp.noop()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"postfix did not start ({done.returncode}): {done.stderr}\n"
                             f"{self.log()}")

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def postfix() -> Iterator[Postfix]:
    need_postfix()
    # Short paths: Postfix's UNIX sockets live under the queue directory (108-byte limit).
    folder = Path(tempfile.mkdtemp(prefix="cmpf"))
    folder.chmod(0o755)  # Postfix's daemons run as the postfix user
    instance = Postfix(folder, free_port())
    yield instance
    instance.run("stop")
    shutil.rmtree(folder, ignore_errors=True)


def test_postfix_relays_list_mail_to_the_gateway_and_refuses_unknown_addresses(
        tmp_path: Path, sink: Sink, postfix: Postfix) -> None:
    env = base_env(tmp_path, CITYMAIL_RELAY_URL=sink.url)
    settings = load_settings(env)
    admin.init(settings)
    engine = make_engine(settings)
    with writing(engine) as conn:
        for email in MEMBERS:
            add_member(conn, load_league(), email=email, name="Clerk", city="Sacramento",
                       role="City Clerk")
    engine.dispose()
    maps = postfix.dir / "maps"
    made = cli(env, "postfix", "maps", "-o", str(maps), "--postmap")
    assert "2 of 2 maps changed" in made.stdout
    postfix.configure(maps)
    postfix.start()
    server = Server(env).start()
    try:
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as smtp:
            smtp.ehlo("mua.example")
            smtp.mail(MEMBERS[0])
            code, text = smtp.rcpt(f"no-such-list@{DOMAIN}")
            assert code == 550 and b"relay recipient table" in text  # Postfix said no
            code, text = smtp.rcpt("someone@elsewhere.example")
            assert code == 554 and b"Relay access denied" in text  # not an open relay
            assert smtp.rcpt(f"city-clerks-bounces+a1b2c3@{DOMAIN}")[0] == 250  # VERP
            smtp.rset()
            body = (f"From: {MEMBERS[0]}\r\nTo: {LIST}\r\nSubject: Through Postfix\r\n"
                    f"Message-ID: <via-postfix-{time.monotonic_ns()}@sacramento.example>\r\n"
                    "\r\nRelayed by Postfix.\r\n")
            smtp.sendmail(MEMBERS[0], [LIST], body.encode())
        copies = sink.wait_for(len(MEMBERS), timeout=30)
    finally:
        server.stop()
    assert sorted(r for c in copies for r in c.rcpt_tos) == sorted(MEMBERS), postfix.log()
    for copy in copies:
        assert copy.message["Subject"] == "[City Clerks] Through Postfix"
        assert "Relayed by Postfix." in copy.message.get_body(("plain",)).get_content()
        assert "mx.citymail.test" in str(copy.message["Received"])  # it came through Postfix
