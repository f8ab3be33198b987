"""Confirmation tokens cannot be guessed, moved, or used late; expiry picks the right rows."""

from __future__ import annotations

import datetime as dt

from listservs.confirm import TOKEN_PATTERN, confirm_address, make_token, read_token
from listservs.moderation import HeldRow, expired

KEY = b"k" * 32
OLD = b"o" * 32
NOW = 1_800_000_000


def test_token_round_trip_is_lower_case_and_fits_an_address() -> None:
    token = make_token(KEY, "m", "city-clerks", 4321, expires=NOW + 86400)
    assert token == token.lower() and TOKEN_PATTERN.fullmatch(token)
    found = read_token([KEY], "city-clerks", token, now=NOW)
    assert found is not None and (found.kind, found.ident) == ("m", 4321)
    address = confirm_address("planning-community-development", "lists.cacities.org",
                              make_token(KEY, "r", "planning-community-development", 999,
                                         expires=NOW))
    assert len(address.partition("@")[0]) <= 64
    # The gateway and some MTAs fold case: an upper-cased token still reads.
    assert read_token([KEY], "city-clerks", token.upper(), now=NOW) == found


def test_forged_tokens_are_refused() -> None:
    token = make_token(KEY, "m", "city-clerks", 42, expires=NOW + 86400)
    kind_id, expiry, mac = token.split("-")
    assert read_token([b"x" * 32], "city-clerks", token, now=NOW) is None  # another key
    assert read_token([KEY], "city-clerks", f"m43-{expiry}-{mac}", now=NOW) is None  # other id
    assert read_token([KEY], "city-clerks", f"{kind_id}-{expiry}-{'a' * 13}", now=NOW) is None
    longer = make_token(KEY, "m", "city-clerks", 42, expires=NOW + 10 * 86400).split("-")[1]
    assert read_token([KEY], "city-clerks", f"{kind_id}-{longer}-{mac}", now=NOW) is None
    for garbage in ("", "m1", "m1-2-3", "x1-abc-abcdefghijklm", "m1-abc-abcdefghijk!m", None):
        assert read_token([KEY], "city-clerks", garbage, now=NOW) is None


def test_tokens_are_bound_to_their_kind_and_list() -> None:
    token = make_token(KEY, "r", "city-clerks", 42, expires=NOW + 86400)
    assert read_token([KEY], "fire-chiefs", token, now=NOW) is None
    assert read_token([KEY], "city-clerks", "m" + token[1:], now=NOW) is None
    assert read_token([KEY], "city-clerks", "a" + token[1:], now=NOW) is None


def test_tokens_expire_and_survive_key_rotation() -> None:
    token = make_token(OLD, "a", "city-clerks", 7, expires=NOW)
    assert read_token([KEY, OLD], "city-clerks", token, now=NOW - 1) is not None
    assert read_token([KEY, OLD], "city-clerks", token, now=NOW + 1) is None


def _row(ident: int, list_id: int, age_days: float, state: str = "held") -> HeldRow:
    now = dt.datetime.fromtimestamp(NOW, dt.UTC)
    return HeldRow(ident, list_id, ident, f"p{ident}@example.org", "s",
                   now - dt.timedelta(days=age_days), state)


def test_expired_selects_held_rows_past_their_lists_hold_days() -> None:
    now = dt.datetime.fromtimestamp(NOW, dt.UTC)
    rows = [_row(1, 1, 15), _row(2, 1, 13.9), _row(3, 1, 14), _row(4, 1, 30, "approved"),
            _row(5, 2, 4), _row(6, 2, 2)]
    assert [r.id for r in expired(rows, now, 14)] == [1, 3]
    assert [r.id for r in expired(rows, now, {2: 3})] == [1, 3, 5]
    assert expired([], now, 14) == []
