from mailer.tokens import sign, unsign
from mailer.verp import verp_decode, verp_sender, verp_token

KEY = b"k" * 32
OLD = b"o" * 32


def test_token_round_trip_and_purpose_binding() -> None:
    token = sign(KEY, "unsubscribe", 42, 7)
    assert unsign([KEY], "unsubscribe", token) == ["42", "7"]
    assert unsign([KEY], "approve", token) is None


def test_forged_or_altered_tokens_are_refused() -> None:
    token = sign(KEY, "unsubscribe", 42, 7)
    _payload, mac = token.split(".")
    other = sign(KEY, "unsubscribe", 43, 7).split(".")[0]
    assert unsign([KEY], "unsubscribe", f"{other}.{mac}") is None  # reused for another member
    assert unsign([b"x" * 32], "unsubscribe", token) is None
    assert unsign([KEY], "unsubscribe", "garbage") is None
    assert unsign([KEY], "unsubscribe", "") is None


def test_expired_tokens_are_refused() -> None:
    token = sign(KEY, "confirm", "a@b", expires=1000)
    assert unsign([KEY], "confirm", token, now=999) == ["a@b"]
    assert unsign([KEY], "confirm", token, now=1001) is None


def test_rotated_keys_still_verify() -> None:
    token = sign(OLD, "unsubscribe", 1, 2)
    assert unsign([KEY, OLD], "unsubscribe", token) == ["1", "2"]


def test_verp_round_trip_and_forgery() -> None:
    sender = verp_sender("city-clerks-bounces", "lists.cacities.org", KEY, 123456)
    local = sender.split("@")[0]
    assert len(local) <= 64 and local == local.lower()
    token = local.split("+", 1)[1]
    assert verp_decode([KEY], token) == 123456
    assert verp_decode([KEY], token.upper()) == 123456  # MTAs that fold case
    forged = verp_token(b"z" * 32, 123456)
    assert verp_decode([KEY], forged) is None
    ident, mac = token.split("-")
    assert verp_decode([KEY], f"{ident}1-{mac}") is None
    assert verp_decode([KEY], "nonsense") is None
