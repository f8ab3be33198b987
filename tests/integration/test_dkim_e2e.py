"""Copies delivered through a real citymail serve carry DKIM signatures that verify."""

from __future__ import annotations

import json
import smtplib
from pathlib import Path

import dkim
from helpers import Server, Sink, base_env, cli

LIST = "city-clerks@lists.cacities.org"


def test_personalised_copies_are_signed_over_the_one_click_headers(tmp_path: Path,
                                                                    sink: Sink) -> None:
    env = base_env(tmp_path, CITYMAIL_RELAY_URL=sink.url)
    key = json.loads(cli(env, "dkim", "keygen", "--selector", "s1", "--out",
                         str(tmp_path / "dkim"), "--json").stdout)
    env.update(key["settings"])
    cli(env, "init")
    for address in ("alice@example.org", "bob@example.net"):
        cli(env, "members", "add", address, "--name", "M", "--city", "Davis",
            "--role", "City Clerk", "--no-welcome")
    server = Server(env).start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
            smtp.sendmail("alice@example.org", [LIST],
                          f"From: alice@example.org\r\nTo: {LIST}\r\nSubject: signed\r\n"
                          "Message-ID: <signed@example.org>\r\n\r\nHello.\r\n".encode())
        copies = sink.wait_for(2)
    finally:
        server.stop()
    record = key["record"].encode()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"s1._domainkey.lists.cacities.org." else b""

    assert len(copies) == 2
    for copy in copies:
        assert dkim.verify(copy.data, dnsfunc=dns)
        signature = copy.message["DKIM-Signature"]
        signed = signature.split("h=")[1].split(";")[0].lower()
        assert "list-unsubscribe" in signed and "list-unsubscribe-post" in signed
        # Changing the personal one-click URL breaks the signature.
        tampered = copy.data.replace(b"/u/", b"/u/x", 1)
        assert not dkim.verify(tampered, dnsfunc=dns)
