"""The web's base: health check, headers, error pages, the stylesheet, and uvicorn on the
already-running loop (as ``citymail serve`` runs it beside the SMTP gateway)."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from mailer import schema
from mailer.db import make_engine
from mailer.errors import CitymailError
from mailer.settings import Settings
from web.app import create_app
from web.ratelimit import Limit, RateLimiter
from web.server import serve_web, stop_web


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path}/citymail.db", var_dir=tmp_path,
                    secret_keys=("k" * 32,), base_url="http://testserver")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


def test_healthz_answers_ok_with_hardened_headers(settings: Settings, engine: Engine) -> None:
    with TestClient(create_app(settings, engine)) as client:
        response = client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok")
    headers = response.headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"


def test_healthz_says_when_the_database_is_down(settings: Settings, tmp_path: Path) -> None:
    broken = make_engine(Settings(database_url=f"sqlite:///{tmp_path}", var_dir=tmp_path,
                                  secret_keys=("k" * 32,)))
    try:
        with TestClient(create_app(settings, broken)) as client:
            response = client.get("/healthz")
    finally:
        broken.dispose()
    assert (response.status_code, response.text) == (503, "database unavailable")


def test_unknown_pages_get_a_plain_page_and_the_stylesheet_is_served(
        settings: Settings, engine: Engine) -> None:
    with TestClient(create_app(settings, engine)) as client:
        missing = client.get("/no/such/page")
        css = client.get("/static/site.css")
        wrong = client.delete("/manage")
    assert missing.status_code == 404 and "Page not found" in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    assert wrong.status_code == 405
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "http" not in css.text  # nothing loaded from elsewhere


def test_oversized_bodies_are_refused(settings: Settings, engine: Engine) -> None:
    with TestClient(create_app(settings, engine)) as client:
        response = client.post("/manage", content=b"email=" + b"a" * 100_000,
                               headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413


def test_templates_escape_what_people_type(settings: Settings, engine: Engine) -> None:
    with TestClient(create_app(settings, engine)) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/manage").text)
        response = client.post("/manage", data={"email": '"><script>alert(1)</script>',
                                                "csrf_token": token[1]})
    assert response.status_code == 400
    assert "<script>" not in response.text and "&lt;script&gt;" in response.text


def test_rate_limit_window_slides() -> None:
    now = [0.0]
    limiter = RateLimiter({"address": Limit(2, 60.0)}, clock=lambda: now[0])
    assert limiter.hit(address="a") == 0 and limiter.hit(address="a") == 0
    assert limiter.hit(address="a") == pytest.approx(60.0)
    assert limiter.hit(address="b") == 0
    now[0] = 60.5
    assert limiter.hit(address="a") == 0


async def _serve_and_ask(settings: Settings, engine: Engine) -> tuple[int, str, bool]:
    server, task = await serve_web(create_app(settings, engine), "127.0.0.1", 0)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/healthz")
        with pytest.raises(CitymailError, match="CITYMAIL_WEB_PORT"):
            await serve_web(create_app(settings, engine), "127.0.0.1", port)
    finally:
        await stop_web(server, task)
    with socket.socket() as probe:
        refused = probe.connect_ex(("127.0.0.1", port)) != 0
    return response.status_code, response.text, refused


def test_serve_web_runs_beside_other_servers_on_the_running_loop(
        settings: Settings, engine: Engine) -> None:
    status, body, closed_after_stop = asyncio.run(_serve_and_ask(settings, engine))
    assert (status, body) == (200, "ok")
    assert closed_after_stop
