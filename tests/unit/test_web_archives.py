"""The newsletters' public archive pages and RSS feed over HTTP."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sqlalchemy import Engine
from starlette.testclient import TestClient

from mailer.settings import Settings
from web.app import create_app


def client(settings: Settings, engine: Engine) -> TestClient:
    return TestClient(create_app(settings, engine))


def test_archive_index_and_rss_of_a_newsletter(settings: Settings, engine: Engine) -> None:
    with client(settings, engine) as http:
        page = http.get("/newsletters/advocate/")
        assert page.status_code == 200
        assert "Cal Cities Advocate" in page.text
        feed = http.get("/newsletters/advocate/rss.xml")
        assert feed.status_code == 200
        assert feed.headers["content-type"].startswith("application/rss+xml")
        channel = ET.fromstring(feed.content).find("channel")
        assert channel is not None and "Cal Cities Advocate" in (channel.findtext("title") or "")


def test_unknown_newsletters_and_issues_are_404(settings: Settings, engine: Engine) -> None:
    with client(settings, engine) as http:
        assert http.get("/newsletters/nope/").status_code == 404
        assert http.get("/newsletters/city-clerks/").status_code == 404  # a list, not a newsletter
        assert http.get("/newsletters/advocate/issues/99").status_code == 404
        assert http.get("/newsletters/advocate/rss.xml").status_code == 200
