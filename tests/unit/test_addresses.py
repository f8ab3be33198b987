import pytest

from mailer.addresses import AddressTable, Rejection, Target

TABLE = AddressTable("lists.cacities.org", [("city-clerks", "list"), ("advocate", "newsletter")])


@pytest.mark.parametrize(("address", "target"), [
    ("city-clerks@lists.cacities.org", Target("city-clerks", "post")),
    ("City-Clerks@Lists.CACities.org", Target("city-clerks", "post")),
    ("city-clerks-request@lists.cacities.org", Target("city-clerks", "request")),
    ("city-clerks-join@lists.cacities.org", Target("city-clerks", "join")),
    ("city-clerks-subscribe@lists.cacities.org", Target("city-clerks", "join")),
    ("city-clerks-leave@lists.cacities.org", Target("city-clerks", "leave")),
    ("city-clerks-owner@lists.cacities.org", Target("city-clerks", "owner")),
    ("city-clerks-bounces@lists.cacities.org", Target("city-clerks", "bounces")),
    ("city-clerks-bounces+1a-abcdefgh@lists.cacities.org",
     Target("city-clerks", "bounces", "1a-abcdefgh")),
    ("city-clerks-confirm+tok@lists.cacities.org", Target("city-clerks", "confirm", "tok")),
    ("advocate-bounces+x@lists.cacities.org", Target("advocate", "bounces", "x")),
    ("<city-clerks@lists.cacities.org>", Target("city-clerks", "post")),
])
def test_list_addresses_resolve(address: str, target: Target) -> None:
    assert TABLE.resolve(address) == target


@pytest.mark.parametrize(("address", "code", "status"), [
    ("nobody@lists.cacities.org", 550, "5.1.1"),
    ("city-clerks-nope@lists.cacities.org", 550, "5.1.1"),
    ("advocate@lists.cacities.org", 550, "5.1.1"),  # a newsletter takes no posts
    ("city-clerks-request+x@lists.cacities.org", 550, "5.1.1"),
    ("city-clerks-confirm@lists.cacities.org", 550, "5.1.1"),
    ("city-clerks@example.com", 550, "5.7.1"),
    ("city-clerks@lists.cacities.org.evil.example", 550, "5.7.1"),
    ("no-at-sign", 553, "5.1.3"),
])
def test_other_addresses_are_refused(address: str, code: int, status: str) -> None:
    result = TABLE.resolve(address)
    assert isinstance(result, Rejection)
    assert result.code == code and result.text.startswith(status)


def test_target_round_trips_through_json() -> None:
    t = Target("city-clerks", "bounces", "tok")
    assert Target.from_json(t.to_json()) == t
    assert t.address("lists.cacities.org") == "city-clerks-bounces+tok@lists.cacities.org"
