"""/metrics: what Prometheus scrapes, read from the database, only for whom it is meant."""

from __future__ import annotations

import dataclasses

import pytest
from ops_scene import build_scene
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from starlette.testclient import TestClient

from mailer.db import utcnow
from mailer.settings import Settings
from web.app import create_app
from web.metrics import allowed


def scrape(settings: Settings, engine: Engine, *, client: str = "127.0.0.1",
           headers: dict[str, str] | None = None):
    app = create_app(settings, engine)
    with TestClient(app, client=(client, 40000)) as http:
        return http.get("/metrics", headers=headers or {})


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_report_mail_in_every_state_from_the_database(
        settings: Settings, engine: Engine) -> None:
    build_scene(engine, utcnow())
    page = scrape(settings, engine)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    got = samples(page.text)

    def one(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert one("citymail_inbound_messages", outcome="accepted") == 2
    assert one("citymail_inbound_messages", outcome="held") == 1
    assert one("citymail_inbound_messages", outcome="other") == 1
    assert one("citymail_inbound_messages", outcome="waiting") == 1
    assert one("citymail_deliveries", state="sent") == 5
    assert one("citymail_deliveries", state="failed") == 2
    assert one("citymail_deliveries", state="pending") == 1
    assert one("citymail_deliveries", state="deferred") == 1
    assert one("citymail_deliveries", state="sending") == 0
    assert one("citymail_bounce_events", kind="permanent") == 1
    assert 119 <= one("citymail_queue_lag_seconds", queue="inbound") < 180
    assert 29 <= one("citymail_queue_lag_seconds", queue="deliveries") < 90
    assert one("citymail_workers_alive", host="mx1") == 2
    assert ("citymail_workers_alive", (("host", "mx2"),)) not in got  # stopped beating
    assert one("citymail_workers_alive_total") == 2
    assert one("citymail_newsletter_issues", state="sending") == 0


def test_an_empty_installation_has_zero_lag(settings: Settings, engine: Engine) -> None:
    got = samples(scrape(settings, engine).text)
    assert got[("citymail_queue_lag_seconds", (("queue", "inbound"),))] == 0
    assert got[("citymail_deliveries", (("state", "pending"),))] == 0


def test_metrics_are_refused_to_other_networks_without_the_token(
        settings: Settings, engine: Engine) -> None:
    assert scrape(settings, engine, client="203.0.113.9").status_code == 403
    with_token = dataclasses.replace(settings, metrics_token="s3cret-scrape-token")
    page = scrape(with_token, engine, client="203.0.113.9",
                  headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert page.status_code == 200 and "citymail_deliveries" in page.text
    wrong = scrape(with_token, engine, client="203.0.113.9",
                   headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 403
    wide = dataclasses.replace(settings, metrics_allow=("203.0.113.0/24",))
    assert scrape(wide, engine, client="203.0.113.9").status_code == 200


@pytest.mark.parametrize(("client", "headers", "proxies", "ok"), [
    ("127.0.0.1", {}, (), True),
    ("::1", {}, (), True),
    ("10.1.2.3", {}, (), False),
    # A proxy on this machine forwarding a stranger: not local.
    ("127.0.0.1", {"x-forwarded-for": "198.51.100.7"}, (), False),
    # With trusted proxies web/proxy.py has put the real client in place already.
    ("127.0.0.1", {"x-forwarded-for": "127.0.0.1"}, ("127.0.0.1",), True),
    ("testclient", {}, (), False),
])
def test_who_may_read_metrics(settings: Settings, client: str, headers: dict[str, str],
                              proxies: tuple[str, ...], ok: bool) -> None:
    s = dataclasses.replace(settings, trusted_proxies=proxies)
    assert allowed(client, headers, s) is ok
