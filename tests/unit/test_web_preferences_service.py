"""mailer.preferences, the service behind the self-service pages, without HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, select

from mailer import schema
from mailer.db import make_engine, writing
from mailer.errors import InvalidInput, NotFound
from mailer.league import load_league, seed_lists
from mailer.models import MailingList
from mailer.people import add_member
from mailer.preferences import (
    person_by_email,
    read_preferences_token,
    read_unsubscribe_token,
    rejoin,
    set_mode,
    subscription_of,
    subscriptions_of,
    unsubscribe,
)
from mailer.preferences import preferences_url as make_preferences_url
from mailer.sending import unsubscribe_url
from mailer.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path}/citymail.db", var_dir=tmp_path,
                    secret_keys=("k" * 32, "o" * 32))


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    schema.upgrade(engine)
    with writing(engine) as conn:
        seed_lists(conn, load_league())
        add_member(conn, load_league(), email="ann@example.org", city="Davis",
                   role="City Clerk")
    yield engine
    engine.dispose()


def _ids(conn: Connection, name: str) -> tuple[int, int]:
    person = person_by_email(conn, "ANN@example.org")
    assert person is not None
    return person.id, conn.execute(select(MailingList.id).where(MailingList.name == name)
                                   ).scalar_one()


def test_unsubscribe_is_idempotent_and_records_how(engine: Engine) -> None:
    with writing(engine) as conn:
        member, clerks = _ids(conn, "city-clerks")
        assert unsubscribe(conn, member, clerks, source="one-click") is True
        assert unsubscribe(conn, member, clerks, source="one-click") is False
        sub = subscription_of(conn, member, clerks)
    assert sub is not None and sub.status == "left"


def test_leaving_a_list_never_joined_keeps_the_person_out_later(engine: Engine) -> None:
    with writing(engine) as conn:
        member, fire = _ids(conn, "fire-chiefs")
        assert unsubscribe(conn, member, fire, source="email") is True
        result = add_member(conn, load_league(), email="ann@example.org",
                            role="City Clerk", extra_lists=["fire-chiefs"], source="import")
        assert result.kept_out == ("fire-chiefs",)
        with pytest.raises(NotFound):
            unsubscribe(conn, member, 999_999, source="email")


def test_modes_are_checked_against_the_kind_of_list(engine: Engine) -> None:
    with writing(engine) as conn:
        member, clerks = _ids(conn, "city-clerks")
        _, advocate = _ids(conn, "advocate")
        assert set_mode(conn, member, clerks, "digest") is True
        assert set_mode(conn, member, clerks, "digest") is False
        with pytest.raises(InvalidInput, match="regular, nomail"):
            set_mode(conn, member, advocate, "digest")
        unsubscribe(conn, member, clerks, source="web")
        with pytest.raises(NotFound):
            set_mode(conn, member, clerks, "regular")
        assert rejoin(conn, member, clerks, "nomail") is True
        views = {v.name: (v.status, v.mode) for v in subscriptions_of(conn, member)}
    assert views == {"city-clerks": ("active", "nomail"), "advocate": ("active", "regular"),
                     "western-city": ("active", "regular")}


def test_link_tokens_round_trip_and_expire(settings: Settings) -> None:
    token = unsubscribe_url(settings, 7, 3).rsplit("/", 1)[1]
    assert read_unsubscribe_token(settings, token) == (7, 3)
    assert read_preferences_token(settings, token) is None
    url = make_preferences_url(settings, 7, now=1_000_000)
    assert url.startswith(f"{settings.base_url}/p/")
    pref = url.rsplit("/", 1)[1]
    assert read_preferences_token(settings, pref, now=1_000_000 + 29 * 86400) == 7
    assert read_preferences_token(settings, pref, now=1_000_000 + 31 * 86400) is None
