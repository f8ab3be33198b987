"""The OpenAPI document of /api/v1 matches the routes the app really serves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integrations_support import installation, shared_template
from starlette.routing import Route
from starlette.testclient import TestClient

from web.api_schema import validate
from web.app import create_app

SAMPLE = {"id": "1", "email": "someone@example.org", "name": "advocate"}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_template(tmp_path_factory)


@pytest.fixture
def served(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[tuple[Any, TestClient]]:
    with installation(template, tmp_path, monkeypatch) as site:
        app = create_app(site.settings, site.engine)
        with TestClient(app) as client:
            yield app, client


def api_paths(app: Any) -> set[str]:
    """Every /api route the app serves (the JSON 404 for the rest excepted)."""
    return {r.path_format for r in app.routes if isinstance(r, Route)
            and r.path_format.startswith("/api/") and "{rest}" not in r.path_format}


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_every_route_is_documented_and_every_documented_path_answers(served) -> None:
    app, client = served
    doc = client.get("/api/v1/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert api_paths(app) == set(doc["paths"])

    for path, operations in doc["paths"].items():
        url = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)
        for method, op in operations.items():
            answer = client.request(method.upper(), url, json={})
            if op["security"]:
                scope = op["security"][0]["bearer"][0]
                assert answer.status_code == 401, (method, path)  # it exists, and needs a token
                assert {"401", "403"} <= set(op["responses"]) and scope in op["description"]
            else:
                assert answer.status_code == 200, (method, path)
        # A method the document does not list is refused, in JSON.
        missing = next(m for m in ("put", "patch", "delete") if m not in operations)
        answer = client.request(missing.upper(), url)
        assert answer.status_code == 405 and "error" in answer.json()


def test_the_document_is_self_consistent(served) -> None:
    _, client = served
    doc = client.get("/api/v1/openapi.json").json()
    for ref in set(refs(doc)):
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]  # a KeyError is a dangling $ref
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    body = doc["paths"]["/api/v1/members"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    # The documented schema is the one that checks requests.
    assert validate({"email": "a@b.org", "name": "A", "city": "Fresno"}, body) == []
    assert validate({"email": "a@b.org"}, body) == ['"name" is required', '"city" is required']
