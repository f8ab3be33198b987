"""Webhooks: events written with the change, POSTed signed to a real HTTP receiver by the
clock's duty, retried after a failure and given up after 24 hours."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from integrations_support import Installation, Receiver, installation, shared_template
from sqlalchemy import func, select, update

from mailer import preferences, webhooks
from mailer.db import reading, utcnow, writing
from mailer.league import load_league
from mailer.models import MailingList
from mailer.models_api import WebhookEvent
from mailer.privacy import forget
from mailer.roster import import_roster
from mailer.welcome import join
from newsletters import issues
from newsletters.dispatch import finish_sent_issues
from newsletters.models import Issue

ALL = ("member.added", "member.removed", "subscription.changed", "issue.sent")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_template(tmp_path_factory)


@pytest.fixture
def site(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[Installation]:
    with installation(template, tmp_path, monkeypatch) as inst:
        yield inst


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def add_hook(site: Installation, url: str, *events: str) -> str:
    code, out, err = site.cli("webhooks", "add", url, *(a for e in events
                                                         for a in ("--event", e)))
    assert code == 0, err
    secret = out.splitlines()[0]
    assert secret.startswith("whsec_") and "not shown again" in out
    return secret


def add_member(site: Installation, email: str) -> None:
    with writing(site.engine) as conn:
        join(conn, site.settings, load_league(), email=email,
             name="Ann Lee", city="Fresno", role="City Clerk", welcome=False)


def events(site: Installation) -> list[tuple[str, str]]:
    with reading(site.engine) as conn:
        return [(r.event, r.state) for r in conn.execute(
            select(WebhookEvent.event, WebhookEvent.state).order_by(WebhookEvent.id))]


def test_member_added_reaches_the_receiver_signed(site: Installation,
                                                  receiver: Receiver) -> None:
    secret = add_hook(site, receiver.url, "member.added")
    add_member(site, "ann@fresno.gov")

    assert webhooks.deliver_due_webhooks(site.engine, site.settings) == 1

    [hit] = receiver.hits
    assert hit.path == "/hooks/citymail"
    assert hit.headers["X-Citymail-Event"] == "member.added"
    stamp = hit.headers["X-Citymail-Timestamp"]
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + hit.body,
                        hashlib.sha256).hexdigest()
    assert hit.headers["X-Citymail-Signature"] == f"sha256={expected}"
    assert hit.json["event"] == "member.added"
    assert hit.json["data"]["email"] == "ann@fresno.gov"
    assert hit.json["data"]["league_member"] is True
    assert events(site) == [("member.added", "delivered")]
    # Delivered once: nothing is due any more, and the receiver hears nothing new.
    assert webhooks.deliver_due_webhooks(site.engine, site.settings) == 0
    assert len(receiver.hits) == 1


def test_a_500_is_retried_with_backoff_then_delivered(site: Installation) -> None:
    receiver = Receiver(statuses=[500, 204]).start()
    try:
        add_hook(site, receiver.url, "member.added")
        add_member(site, "bob@fresno.gov")
        rng = random.Random(1)
        start = utcnow()

        assert webhooks.deliver_due_webhooks(site.engine, site.settings, now=start,
                                             rng=rng) == 0
        with reading(site.engine) as conn:
            row = conn.execute(select(WebhookEvent)).one()
        assert row.state == "pending" and row.attempts == 1 and row.last_error == "HTTP 500"
        wait = (row.next_attempt_at - start).total_seconds()
        assert 15 <= wait <= 30  # the first back-off, with jitter
        # Not yet due: nothing is sent.
        assert webhooks.deliver_due_webhooks(site.engine, site.settings,
                                             now=start + dt.timedelta(seconds=10)) == 0
        assert len(receiver.hits) == 1

        later = start + dt.timedelta(seconds=31)
        assert webhooks.deliver_due_webhooks(site.engine, site.settings, now=later) == 1
        first, second = receiver.hits
        assert first.headers["X-Citymail-Delivery"] == second.headers["X-Citymail-Delivery"]
        assert first.body == second.body
        assert events(site) == [("member.added", "delivered")]
    finally:
        receiver.stop()


def test_a_dead_receiver_is_given_up_after_24_hours(site: Installation) -> None:
    dead = Receiver().start()
    url = dead.url
    dead.stop()  # the port now refuses connections
    add_hook(site, url, "member.added")
    add_member(site, "cy@fresno.gov")
    start = utcnow()
    assert webhooks.deliver_due_webhooks(site.engine, site.settings, now=start) == 0
    with reading(site.engine) as conn:
        assert conn.scalar(select(WebhookEvent.last_error)).startswith("no answer")
    assert events(site) == [("member.added", "pending")]

    with writing(site.engine) as conn:  # a day later it is due again, and fails again
        conn.execute(update(WebhookEvent).values(next_attempt_at=start))
    webhooks.deliver_due_webhooks(site.engine, site.settings,
                                  now=start + dt.timedelta(hours=24, minutes=1))
    assert events(site) == [("member.added", "failed")]
    assert json.loads(site.cli("webhooks", "list", "--json")[1])[0]["failed"] == 1


def test_events_exist_only_if_the_change_was_committed(site: Installation,
                                                       receiver: Receiver) -> None:
    add_hook(site, receiver.url, *ALL)
    with pytest.raises(RuntimeError), writing(site.engine) as conn:
        join(conn, site.settings, load_league(), email="dee@fresno.gov", name="Dee",
             city="Fresno", welcome=False)
        raise RuntimeError("the change fails after the member was added")
    assert events(site) == []
    assert webhooks.deliver_due_webhooks(site.engine, site.settings) == 0
    assert receiver.hits == []


def test_subscription_changes_and_sent_issues_are_reported(site: Installation,
                                                           receiver: Receiver) -> None:
    add_hook(site, receiver.url, "subscription.changed", "issue.sent")
    add_member(site, "eve@fresno.gov")
    with writing(site.engine) as conn:
        member = preferences.person_by_email(conn, "eve@fresno.gov")
        assert member is not None
        advocate = conn.scalar(select(MailingList.id).where(MailingList.name == "advocate"))
        preferences.unsubscribe(conn, member.id, advocate, source="one-click")
        issue_id = issues.create_issue(conn, "western-city", subject="June")
        conn.execute(update(Issue).where(Issue.id == issue_id).values(state="sending"))
    assert finish_sent_issues(site.engine) == [issue_id]

    webhooks.deliver_due_webhooks(site.engine, site.settings)

    changes = [h.json["data"] for h in receiver.hits
               if h.headers["X-Citymail-Event"] == "subscription.changed"]
    joined = {c["list"] for c in changes if c["status"] == "active"}
    assert {"advocate", "western-city", "city-clerks"} <= joined
    assert {"email": "eve@fresno.gov", "list": "advocate", "kind": "newsletter",
            "status": "left", "mode": None, "source": "one-click"} in changes
    [sent] = [h.json["data"] for h in receiver.hits
              if h.headers["X-Citymail-Event"] == "issue.sent"]
    assert sent["id"] == issue_id and sent["newsletter"] == "western-city"


def test_nobody_listening_writes_no_events(site: Installation) -> None:
    add_member(site, "fay@fresno.gov")
    with reading(site.engine) as conn:
        assert conn.scalar(select(func.count()).select_from(WebhookEvent)) == 0


def test_cli_adds_lists_and_removes_hooks_with_clear_errors(site: Installation) -> None:
    code, _, err = site.cli("webhooks", "add", "ftp://example.org/x", "--event",
                            "member.added")
    assert code == 2 and "must be http(s)://HOST/PATH" in err
    add_hook(site, "https://league.example.org/hooks", "member.added", "issue.sent")
    code, out, _ = site.cli("webhooks", "list", "--json")
    [row] = json.loads(out)
    assert row["url"] == "https://league.example.org/hooks"
    assert row["events"] == ["member.added", "issue.sent"] and "secret" not in row
    assert site.cli("webhooks", "remove", str(row["id"]))[0] == 0
    code, _, err = site.cli("webhooks", "remove", str(row["id"]))
    assert code == 2 and "no webhook" in err
    assert json.loads(site.cli("webhooks", "list", "--json")[1]) == []


def test_an_erased_member_is_reported_removed_once(site: Installation,
                                                   receiver: Receiver) -> None:
    add_hook(site, receiver.url, "member.removed")
    add_member(site, "gus@fresno.gov")
    forget(site.engine, site.settings, "gus@fresno.gov")
    forget(site.engine, site.settings, "gus@fresno.gov")  # again: nobody left to remove
    assert webhooks.deliver_due_webhooks(site.engine, site.settings) == 1
    [hit] = receiver.hits
    assert hit.json["data"] == {"email": "gus@fresno.gov", "reason": "erased"}


def test_the_clock_duty_posts_in_its_own_thread_only_when_something_is_due(
        site: Installation, receiver: Receiver) -> None:
    courier = webhooks.courier(site.engine, site.settings)
    assert courier is webhooks.courier(site.engine, site.settings)  # one per engine
    assert courier.kick() is False  # idle: a read, no thread, no write lock
    add_hook(site, receiver.url, "member.added")
    add_member(site, "hal@fresno.gov")
    assert courier.kick() is True
    assert courier._thread is not None
    courier._thread.join(10)
    assert [h.json["data"]["email"] for h in receiver.hits] == ["hal@fresno.gov"]
    assert courier.kick() is False


def test_a_roster_import_reports_its_adds_and_disables(site: Installation,
                                                       receiver: Receiver) -> None:
    add_hook(site, receiver.url, "member.added", "member.removed")
    add_member(site, "old@fresno.gov")
    league = load_league()
    data = b"email,name,city,role\r\nnew@ukiah.gov,Nia New,Ukiah,City Clerk\r\n"
    plan = import_roster(site.engine, site.settings, league, data, sync=True,
                         dry_run=True).plan
    done = import_roster(site.engine, site.settings, league, data, sync=True,
                         welcome=False, confirm=plan.confirm_token)
    assert done.applied
    webhooks.deliver_due_webhooks(site.engine, site.settings)
    seen = [(h.headers["X-Citymail-Event"], h.json["data"]["email"]) for h in receiver.hits]
    assert sorted(seen) == [("member.added", "new@ukiah.gov"),
                            ("member.added", "old@fresno.gov"),
                            ("member.removed", "old@fresno.gov")]
