"""Newsletter sign-up over real HTTP and SMTP: ``citymail serve`` with a relay sink.

A visitor fills the public form; the confirmation mail reaches the sink; its link shows a
button whose POST subscribes them; the workers' clock then POSTs signed webhook events to a
real HTTP receiver.  SQLite with the embedded broker.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from helpers import Server, Sink, base_env, cli
from unit.integrations_support import Receiver

READER = "reader@example.org"


def csrf(page: httpx.Response) -> dict[str, str]:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    return {"csrf_token": found.group(1)} if found else {}


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"waited {timeout}s for {what}"
        time.sleep(0.05)


def test_sign_up_mail_link_and_webhooks_end_to_end(tmp_path: Path, sink: Sink) -> None:
    env = base_env(tmp_path, CITYMAIL_RELAY_URL=sink.url)
    cli(env, "init")
    receiver = Receiver().start()
    server = Server(env)
    try:
        cli(env, "webhooks", "add", receiver.url, "--event", "member.added",
            "--event", "subscription.changed")
        server.start()
        with httpx.Client(base_url=env["CITYMAIL_BASE_URL"], timeout=10) as web:
            eventually(lambda: _up(web), "the web server")
            form = web.get("/newsletters/advocate/subscribe")
            sent = web.post("/newsletters/advocate/subscribe",
                            data={"email": READER, "name": "Rae", **csrf(form)})
            assert sent.status_code == 200 and "Check your email" in sent.text

            eventually(lambda: any(READER in m.rcpt_tos for m in sink.messages),
                       "the confirmation mail")
            [mail] = [m for m in sink.messages if READER in m.rcpt_tos]
            assert "confirm your subscription to Cal Cities Advocate" in mail.message["Subject"]
            text = mail.message.get_body(("plain",)).get_content()
            [link] = re.findall(r"http://\S+/s/\S+", text)

            page = web.get(link)
            assert "Confirm my subscription" in page.text
            done = web.post(link, data=csrf(page))
            assert done.status_code == 200 and "will receive" in done.text

        shown = json.loads(cli(env, "members", "show", READER, "--json").stdout)
        assert [s["name"] for s in shown["subscriptions"]] == ["advocate"]
        eventually(lambda: len(receiver.hits) >= 2, "the webhook events")
        kinds = {h.headers["X-Citymail-Event"]: h.json["data"] for h in receiver.hits}
        assert kinds["member.added"]["email"] == READER
        assert kinds["subscription.changed"]["list"] == "advocate"
        assert kinds["subscription.changed"]["status"] == "active"
        assert all(h.headers["X-Citymail-Signature"].startswith("sha256=")
                   for h in receiver.hits)
    finally:
        server.stop()
        receiver.stop()


def _up(web: httpx.Client) -> bool:
    try:
        return web.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False
