"""The JSON API: tokens from the command line, then what the league's website would do
over real HTTP (Starlette's TestClient) against a real migrated SQLite database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from integrations_support import Installation, installation, shared_template
from sqlalchemy import func, insert, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mailer.db import reading, utcnow, writing
from mailer.models import Delivery, Held, Inbound, MailingList
from mailer.models_api import ApiClient
from mailer.notices import queue_notice
from web.api import api_routes
from web.app import create_app
from web.ratelimit import Limit, RateLimiter

EVERY_SCOPE = ("lists:read", "members:read", "members:write", "held:read", "held:write",
               "issues:read", "issues:write", "deliveries:read", "subscribers:write")
ANN = {"email": "Ann.Lee@Fresno.gov", "name": "Ann Lee", "city": "Fresno",
       "role": "City Clerk"}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_template(tmp_path_factory)


@dataclass
class Api:
    site: Installation
    client: TestClient

    def token(self, *scopes: str, name: str = "website") -> dict[str, str]:
        args = [a for s in scopes for a in ("--scope", s)]
        code, out, err = self.site.cli("api", "token", "create", name, *args)
        assert code == 0, err
        return {"Authorization": f"Bearer {out.splitlines()[0]}"}

    def deliveries_to(self, email: str) -> int:
        with reading(self.site.engine) as conn:
            return conn.scalar(select(func.count()).select_from(Delivery)
                               .where(Delivery.recipient == email))


@pytest.fixture
def api(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    with installation(template, tmp_path, monkeypatch) as site, \
            TestClient(create_app(site.settings, site.engine)) as client:
        yield Api(site, client)


@pytest.fixture
def auth(api: Api) -> dict[str, str]:
    return api.token(*EVERY_SCOPE)


# -- tokens ---------------------------------------------------------------------------------------
def test_token_is_printed_once_and_only_its_hash_is_kept(api: Api) -> None:
    headers = api.token("lists:read", "members:read")
    token = headers["Authorization"].removeprefix("Bearer ")
    out = api.site.cli("api", "token", "list", "--json")[1]
    [row] = json.loads(out)
    assert row["name"] == "website" and row["scopes"] == ["lists:read", "members:read"]
    assert token not in out and row["last_used"] is None
    with reading(api.site.engine) as conn:
        assert conn.scalar(select(ApiClient.token_hash)) == hashlib.sha256(
            token.encode()).hexdigest()

    assert api.client.get("/api/v1/lists", headers=headers).status_code == 200
    [row] = json.loads(api.site.cli("api", "token", "list", "--json")[1])
    assert row["last_used"] is not None


def test_no_bad_or_revoked_token_is_401_and_a_missing_scope_403(api: Api) -> None:
    r = api.client.get("/api/v1/lists")
    assert r.status_code == 401 and "Bearer" in r.headers["WWW-Authenticate"]
    assert "Authorization: Bearer" in r.json()["error"]
    r = api.client.get("/api/v1/lists", headers={"Authorization": "Bearer cm_forged"})
    assert r.status_code == 401 and r.json() == {"error": "the token is unknown or was revoked"}

    reader = api.token("lists:read", name="reader")
    r = api.client.post("/api/v1/members", headers=reader, json=ANN)
    assert r.status_code == 403 and r.json() == {"error": "this token lacks the scope "
                                                          "members:write"}
    assert api.site.cli("api", "token", "revoke", "reader")[0] == 0
    assert api.client.get("/api/v1/lists", headers=reader).status_code == 401
    code, _, err = api.site.cli("api", "token", "revoke", "nobody")
    assert code == 2 and "no API client called 'nobody'" in err


def test_scopes_and_names_are_checked_on_the_command_line(api: Api) -> None:
    code, _, err = api.site.cli("api", "token", "create", "x", "--scope", "everything")
    assert code == 2 and "invalid choice" in err
    api.token("lists:read")
    code, _, err = api.site.cli("api", "token", "create", "website", "--scope", "lists:read")
    assert code == 2 and "already a client called 'website'" in err


# -- lists and members ----------------------------------------------------------------------------
def test_lists_show_every_list_and_newsletter(api: Api, auth: dict[str, str]) -> None:
    lists = {x["name"]: x for x in api.client.get("/api/v1/lists", headers=auth).json()["lists"]}
    assert len(lists) == 17
    assert lists["advocate"]["kind"] == "newsletter"
    assert lists["city-clerks"]["address"] == "city-clerks@lists.cacities.org"


def test_adding_a_member_works_like_the_cli_with_a_welcome(api: Api,
                                                           auth: dict[str, str]) -> None:
    r = api.client.post("/api/v1/members", headers=auth, json=ANN)
    assert r.status_code == 201
    body = r.json()
    assert body["email"] == "ann.lee@fresno.gov" and body["created"] is True
    assert set(body["subscribed"]) == {"advocate", "western-city", "city-clerks"}
    assert body["welcome"] == "queued" and api.deliveries_to("ann.lee@fresno.gov") == 1

    shown = api.client.get("/api/v1/members/ann.lee@fresno.gov", headers=auth).json()
    assert {s["name"] for s in shown["subscriptions"]} == {"advocate", "western-city",
                                                           "city-clerks"}
    again = api.client.post("/api/v1/members", headers=auth, json=ANN)
    assert again.status_code == 200 and again.json()["created"] is False

    quiet = {**ANN, "email": "bo@fresno.gov", "welcome": False}
    assert api.client.post("/api/v1/members", headers=auth, json=quiet).json()["welcome"] == \
        "not sent"
    assert api.deliveries_to("bo@fresno.gov") == 0


def test_members_are_searched_and_paged_with_a_cursor(api: Api, auth: dict[str, str]) -> None:
    for i in range(5):
        api.client.post("/api/v1/members", headers=auth, json={
            **ANN, "email": f"p{i}@{'fresno' if i % 2 else 'ukiah'}.gov", "welcome": False})
    seen, cursor = [], None
    while True:
        page = api.client.get("/api/v1/members", headers=auth,
                              params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        data = page.json()
        seen += [m["email"] for m in data["members"]]
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"p{i}@{'fresno' if i % 2 else 'ukiah'}.gov" for i in range(5)]
    found = api.client.get("/api/v1/members", headers=auth, params={"q": "UKIAH"}).json()
    assert [m["email"] for m in found["members"]] == ["p0@ukiah.gov", "p2@ukiah.gov",
                                                      "p4@ukiah.gov"]
    bad = api.client.get("/api/v1/members", headers=auth, params={"cursor": "nonsense"})
    assert bad.status_code == 400 and "next_cursor" in bad.json()["error"]
    bad = api.client.get("/api/v1/members", headers=auth, params={"limit": "0"})
    assert bad.status_code == 400 and "from 1 to 200" in bad.json()["error"]
    missing = api.client.get("/api/v1/members/nobody@x.org", headers=auth)
    assert missing.status_code == 404 and "nobody@x.org" in missing.json()["error"]


def test_someone_who_left_is_only_readded_by_their_own_opt_in(api: Api,
                                                              auth: dict[str, str]) -> None:
    api.client.post("/api/v1/members", headers=auth, json={**ANN, "welcome": False})
    url = "/api/v1/members/ann.lee@fresno.gov/subscriptions"
    r = api.client.post(url, headers=auth, json={"list": "advocate", "action": "unsubscribe"})
    assert r.status_code == 200 and r.json()["subscription"]["status"] == "left"

    r = api.client.post(url, headers=auth, json={"list": "advocate", "action": "subscribe"})
    assert r.status_code == 409 and '"opt_in": true' in r.json()["error"]
    r = api.client.post("/api/v1/members", headers=auth, json={**ANN, "welcome": False})
    assert r.json()["kept_out"] == ["advocate"]

    r = api.client.post(url, headers=auth, json={"list": "advocate", "action": "subscribe",
                                                 "opt_in": True})
    assert r.status_code == 200 and r.json()["subscription"]["status"] == "active"
    subs = {s["list"]: s for s in api.client.get(url, headers=auth).json()["subscriptions"]}
    assert subs["advocate"]["status"] == "active"

    r = api.client.post(url, headers=auth, json={"list": "rural-cities", "action": "subscribe",
                                                 "mode": "digest"})
    assert r.status_code == 200 and r.json()["subscription"]["mode"] == "digest"
    r = api.client.post(url, headers=auth, json={"list": "advocate", "action": "subscribe",
                                                 "mode": "digest"})
    assert r.status_code == 400 and "offers the modes" in r.json()["error"]


# -- bodies ---------------------------------------------------------------------------------------
def test_bad_bodies_get_clear_errors(api: Api, auth: dict[str, str]) -> None:
    post = api.client.post
    r = post("/api/v1/members", headers=auth, json={"email": "a@b.org", "nmae": "x"})
    assert r.status_code == 400
    assert r.json()["errors"] == ['"name" is required', '"city" is required',
                                  "unknown field(s) nmae; expected email, name, city, role, "
                                  "title, lists, welcome"]
    r = post("/api/v1/members", headers=auth, json={**ANN, "welcome": "no"})
    assert r.json()["error"] == 'the body is not valid: "welcome" must be a boolean'
    r = post("/api/v1/members", headers=auth, json={**ANN, "email": "not an address"})
    assert r.status_code == 400 and "not a valid email address" in r.json()["error"]
    r = post("/api/v1/members", headers=auth, json=[1, 2])
    assert r.json()["error"] == "the body is not valid: the body must be an object"
    r = post("/api/v1/members", headers={**auth, "Content-Type": "application/json"},
             content=b"{nope")
    assert r.status_code == 400 and r.json()["error"].startswith("the body is not valid JSON")
    r = post("/api/v1/members", headers=auth, data={"email": "a@b.org"})
    assert r.status_code == 415
    r = post("/api/v1/members", headers=auth, json={**ANN, "name": "x" * 70_000})
    assert r.status_code == 413 and r.json() == {"error": "the body is larger than 64 KiB"}


def test_unknown_paths_and_methods_answer_json(api: Api, auth: dict[str, str]) -> None:
    r = api.client.get("/api/v1/nothing", headers=auth)
    assert r.status_code == 404 and "openapi.json" in r.json()["error"]
    r = api.client.delete("/api/v1/members", headers=auth)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST"
    assert r.json() == {"error": "DELETE is not allowed here; use GET or POST"}


def test_each_client_is_rate_limited(api: Api) -> None:
    app = Starlette(routes=api_routes(api.site.settings, api.site.engine,
                                      limiter=RateLimiter({"client": Limit(2, 60.0)})))
    headers = api.token("lists:read")
    other = api.token("lists:read", name="other")
    with TestClient(app) as client:
        assert [client.get("/api/v1/lists", headers=headers).status_code
                for _ in range(3)] == [200, 200, 429]
        r = client.get("/api/v1/lists", headers=headers)
        assert int(r.headers["Retry-After"]) > 0 and "too many requests" in r.json()["error"]
        assert client.get("/api/v1/lists", headers=other).status_code == 200


def test_guessing_tokens_is_refused_after_twenty_failures_from_one_address(api: Api) -> None:
    good = api.token("lists:read")
    assert api.client.get("/api/v1/lists", headers=good).status_code == 200
    guesses = [api.client.get("/api/v1/lists", headers={"Authorization": f"Bearer cm_{i}"})
               for i in range(21)]
    assert [r.status_code for r in guesses] == [401] * 20 + [429]
    assert 0 < int(guesses[-1].headers["Retry-After"]) <= 600
    assert "too many unknown tokens" in guesses[-1].json()["error"]
    # Refused before the token is looked at: even a good one, from that address, for a while.
    assert api.client.get("/api/v1/lists", headers=good).status_code == 429


def test_failures_are_counted_per_address_and_good_tokens_never_count(api: Api) -> None:
    good = api.token("lists:read")
    bad = {"Authorization": "Bearer cm_forged"}
    routes = api_routes(api.site.settings, api.site.engine,
                        auth_limiter=RateLimiter({"failed_token_ip": Limit(2, 600.0)}))
    app = Starlette(routes=routes)
    with TestClient(app, client=("198.51.100.7", 4000)) as guesser, \
            TestClient(app, client=("203.0.113.9", 4000)) as website:
        assert [website.get("/api/v1/lists", headers=good).status_code
                for _ in range(5)] == [200] * 5
        assert [guesser.get("/api/v1/lists", headers=bad).status_code
                for _ in range(3)] == [401, 401, 429]
        assert guesser.get("/api/v1/lists", headers=good).status_code == 429
        assert website.get("/api/v1/lists", headers=good).status_code == 200
        assert website.get("/api/v1/lists", headers=bad).status_code == 401


# -- moderation, issues, deliveries ---------------------------------------------------------------
def hold(api: Api, subject: str) -> int:
    raw = (f"From: pat@example.org\r\nTo: city-clerks@lists.cacities.org\r\n"
           f"Subject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\r\nHello\r\n").encode()
    with writing(api.site.engine) as conn:
        list_id = conn.scalar(select(MailingList.id).where(MailingList.name == "city-clerks"))
        inbound = conn.execute(insert(Inbound).values(
            peer="127.0.0.1", mail_from="pat@example.org", rcpt_to=[], size=len(raw), raw=raw,
            state="done").returning(Inbound.id)).scalar_one()
        return conn.execute(insert(Held).values(
            inbound_id=inbound, list_id=list_id, sender="pat@example.org", subject=subject,
            reasons=["non-member"], state="held").returning(Held.id)).scalar_one()


def test_held_messages_are_listed_and_decided_once(api: Api, auth: dict[str, str]) -> None:
    first, second = hold(api, "budget"), hold(api, "spam")
    held = api.client.get("/api/v1/held", headers=auth, params={"list": "city-clerks"}).json()
    assert [(h["id"], h["subject"], h["reasons"]) for h in held["held"]] == [
        (first, "budget", ["non-member"]), (second, "spam", ["non-member"])]

    r = api.client.post(f"/api/v1/held/{first}", headers=auth, json={"action": "approve"})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    assert "api:website" in r.json()["note"]
    r = api.client.post(f"/api/v1/held/{second}", headers=auth,
                        json={"action": "reject", "reason": "off topic"})
    assert r.json()["state"] == "discarded"  # unauthenticated poster: no backscatter
    r = api.client.post(f"/api/v1/held/{first}", headers=auth, json={"action": "discard"})
    assert r.status_code == 400 and "already approved" in r.json()["error"]
    assert api.client.get("/api/v1/held", headers=auth).json() == {"held": []}
    r = api.client.post("/api/v1/held/999", headers=auth, json={"action": "discard"})
    assert r.status_code == 404
    r = api.client.post(f"/api/v1/held/{first}", headers=auth, json={"action": "maybe"})
    assert "must be one of approve, reject, discard" in r.json()["error"]


def test_issues_are_created_scheduled_in_local_time_and_cancelled(
        api: Api, auth: dict[str, str]) -> None:
    r = api.client.post("/api/v1/issues", headers=auth, json={
        "newsletter": "advocate", "subject": "Budget week", "blocks": ["# Hello"]})
    assert r.status_code == 201 and r.json()["state"] == "draft"
    issue = r.json()["id"]
    r = api.client.post(f"/api/v1/issues/{issue}/schedule", headers=auth,
                        json={"at": "2031-07-01 09:00"})
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["send_local"], r.json()["send_zone"]) == (
        "scheduled", "2031-07-01T09:00", "America/Los_Angeles")
    assert r.json()["send_at"].startswith("2031-07-01T16:00")  # PDT is UTC-7
    r = api.client.post(f"/api/v1/issues/{issue}/schedule", headers=auth,
                        json={"at": "2001-01-01 09:00"})
    assert r.status_code == 400 and "in the past" in r.json()["error"]
    r = api.client.post(f"/api/v1/issues/{issue}/pause", headers=auth)
    assert r.status_code == 409 and "only sending issues can pause" in r.json()["error"]
    r = api.client.post(f"/api/v1/issues/{issue}/cancel", headers=auth)
    assert r.json()["state"] == "cancelled"
    listed = api.client.get("/api/v1/issues", headers=auth,
                            params={"newsletter": "advocate"}).json()["issues"]
    assert [(i["id"], i["state"]) for i in listed] == [(issue, "cancelled")]
    r = api.client.post("/api/v1/issues", headers=auth, json={"newsletter": "city-clerks",
                                                             "subject": "x"})
    assert r.status_code == 404 and "newsletters: advocate, western-city" in r.json()["error"]
    assert api.client.get("/api/v1/issues/999", headers=auth).status_code == 404


def test_deliveries_show_what_is_being_sent(api: Api, auth: dict[str, str]) -> None:
    with writing(api.site.engine) as conn:
        outbound = queue_notice(conn, data=b"Subject: hi\r\n\r\nhi\r\n",
                                recipients=["a@b.org", "c@d.org"], bounce_local="x")
    rows = api.client.get("/api/v1/deliveries", headers=auth).json()["deliveries"]
    assert [(r["id"], r["kind"], r["pending"], r["total"]) for r in rows] == [
        (outbound, "notice", 2, 2)]
    assert rows[0]["created"] <= utcnow().isoformat()
    r = api.client.get("/api/v1/deliveries", headers=auth, params={"all": "maybe"})
    assert r.status_code == 400


def test_a_failure_on_our_side_is_a_json_500(api: Api, auth: dict[str, str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("web.api_publishing.delivery.status", broken)
    r = api.client.get("/api/v1/deliveries", headers=auth)
    assert r.status_code == 500 and r.json() == {
        "error": "something went wrong on our side; it has been logged"}
    assert api.client.head("/api/v1/lists", headers=auth).status_code == 200
