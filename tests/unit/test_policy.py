"""Posting policy: each rule hits and misses, precedence, announce-only, backscatter."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_string, policy
from typing import Any

import pytest

from listservs.facts import Membership, PostFacts, facts_from_message
from listservs.policy import (
    ACTION_CHOICES,
    ACTIONS,
    BACKSCATTER_NOTE,
    RULES,
    Decision,
    ListPolicy,
    evaluate,
    policy_from_config,
)
from mailer.authresults import AuthVerdict, verdict_from_authres

LIST = "city-clerks@lists.cacities.org"
LIST_ID = "city-clerks.lists.cacities.org"
NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
MEMBER = Membership(is_member=True)
STAFF = Membership(named_poster=True)
PASS = AuthVerdict(dkim_aligned=True, source="dkim", from_domain="ci.berkeley.ca.us")
NO_PASS = AuthVerdict(from_domain="ci.berkeley.ca.us")

POST = f"""\
From: Pat Clerk <pat@ci.berkeley.ca.us>
To: {LIST}
Subject: Agenda posting deadlines
Date: Thu, 26 Nov 2026 09:30:00 -0800
Message-ID: <agenda-1@ci.berkeley.ca.us>

How early do you post agendas?
"""


def with_headers(text: str = POST, **headers: str) -> str:
    """The post with headers replaced (value '') removed or added (name_with_underscores)."""
    head, _, body = text.partition("\n\n")
    lines = head.splitlines()
    for key, value in headers.items():
        name = key.replace("_", "-")
        lines = [ln for ln in lines if not ln.lower().startswith(name.lower() + ":")]
        if value:
            lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n\n" + body


def cc(count: int) -> str:
    return ", ".join(f"clerk{i}@city{i}.ca.gov" for i in range(count))


def facts(
    text: str = POST,
    *,
    envelope: str = "pat@ci.berkeley.ca.us",
    membership: Membership = MEMBER,
    auth: AuthVerdict = PASS,
    size: int | None = None,
    seen: bool = False,
) -> PostFacts:
    msg = message_from_string(text, policy=policy.default)
    return facts_from_message(
        msg,
        envelope_sender=envelope,
        list_address=LIST,
        list_ids=frozenset({LIST_ID}),
        membership=membership,
        auth=auth,
        size=len(text.encode()) if size is None else size,
        now=NOW,
        seen_message_id=seen,
    )


def decide(cfg: ListPolicy | None = None, /, **kwargs: Any) -> Decision:
    """The decision on the post that ``facts(**kwargs)`` describes, under *cfg*."""
    return evaluate(facts(**kwargs), cfg or ListPolicy())


def test_a_member_post_with_nothing_odd_is_accepted_without_reasons() -> None:
    decision = decide()
    assert decision == Decision("accept", (), notify_sender=False, rules=())


# (rule, how to make it hit, list config, expected action with an authenticated sender)
HITS: list[tuple[str, dict[str, object], ListPolicy, str]] = [
    ("loop", {"text": with_headers(List_Id=f"City Clerks <{LIST_ID}>")}, ListPolicy(), "discard"),
    ("no_sender", {"text": with_headers(From=""), "envelope": ""}, ListPolicy(), "discard"),
    ("banned", {"membership": Membership(is_member=True, banned=True)}, ListPolicy(), "reject"),
    ("duplicate", {"seen": True}, ListPolicy(), "discard"),
    ("auto_submitted", {"text": with_headers(Auto_Submitted="auto-replied")}, ListPolicy(), "hold"),
    ("emergency", {}, ListPolicy(emergency_moderation=True), "hold"),
    ("pre_approved", {"membership": STAFF}, ListPolicy(), "accept"),
    ("not_named_poster", {}, ListPolicy(announce_only=True), "reject"),
    ("list_moderation", {}, ListPolicy(moderated=True), "hold"),
    ("member_moderation", {"membership": Membership(is_member=True, moderated=True)}, ListPolicy(),
     "hold"),
    ("non_member", {"membership": Membership()}, ListPolicy(), "hold"),
    ("unauthenticated", {"auth": NO_PASS}, ListPolicy(require_authentication=True), "hold"),
    ("max_size", {"size": 5 * 1024 * 1024 + 1}, ListPolicy(), "hold"),
    ("max_recipients", {"text": with_headers(Cc=cc(10))}, ListPolicy(), "hold"),
    ("implicit_destination", {"text": with_headers(To="clerks-friends@ci.berkeley.ca.us")},
     ListPolicy(), "hold"),
    ("suspicious_header", {"text": with_headers(X_Spam_Flag="YES")},
     ListPolicy(suspicious_headers=(("X-Spam-Flag", r"^yes\b"),)), "hold"),
]  # fmt: skip


def test_every_rule_in_the_table_has_a_hit_case() -> None:
    assert [name for name, *_ in HITS] == [rule.name for rule in RULES]


@pytest.mark.parametrize(("rule", "kwargs", "cfg", "action"), HITS, ids=[h[0] for h in HITS])
def test_each_rule_hits_with_its_action_and_a_reason(
    rule: str, kwargs: dict[str, object], cfg: ListPolicy, action: str
) -> None:
    decision = decide(cfg, **kwargs)
    assert decision.rules == (rule,)
    assert decision.action == action
    assert len(decision.reasons) == 1 and decision.reasons[0]


# Near misses: close to a rule, and it must not hit.
FIRE_CHIEFS = "fire-chiefs@lists.cacities.org"
MISSES: list[tuple[str, dict[str, object], ListPolicy]] = [
    ("List-Id of another list", {"text": with_headers(List_Id="<fire-chiefs.lists.cacities.org>")},
     ListPolicy()),
    ("X-BeenThere of another list", {"text": with_headers(X_BeenThere=FIRE_CHIEFS)}, ListPolicy()),
    ("Sender header is enough", {"text": with_headers(From="", Sender="pat@ci.berkeley.ca.us")},
     ListPolicy()),
    ("envelope sender is enough", {"text": with_headers(From="")}, ListPolicy()),
    ("Auto-Submitted: no", {"text": with_headers(Auto_Submitted="no")}, ListPolicy()),
    ("Precedence: first-class", {"text": with_headers(Precedence="first-class")}, ListPolicy()),
    ("size at the limit", {"size": 5 * 1024 * 1024}, ListPolicy()),
    ("size limit off", {"size": 10**9}, ListPolicy(size_limit=0)),
    ("recipients at the limit", {"text": with_headers(Cc=cc(9))}, ListPolicy()),
    ("list in Cc", {"text": with_headers(To="pat@x.org", Cc=LIST.upper())}, ListPolicy()),
    ("acceptable alias", {"text": with_headers(To="clerks@cacities.org")},
     ListPolicy(acceptable_aliases=("clerks@cacities.org",))),
    ("acceptable alias regex", {"text": with_headers(To="city-clerks@old.cacities.org")},
     ListPolicy(acceptable_aliases=(r"^city-clerks@.*\.cacities\.org$",))),
    ("suspicious pattern not matching", {"text": with_headers(X_Spam_Flag="NO")},
     ListPolicy(suspicious_headers=(("X-Spam-Flag", r"^yes\b"),))),
    ("named poster is no non-member", {"membership": STAFF, "auth": NO_PASS}, ListPolicy()),
    ("moderation flag of a non-member", {"membership": Membership(moderated=True)}, ListPolicy()),
    ("authenticated on a list that requires it", {}, ListPolicy(require_authentication=True)),
    ("unauthenticated on an open list", {"auth": NO_PASS}, ListPolicy()),
]  # fmt: skip


@pytest.mark.parametrize(("case", "kwargs", "cfg"), MISSES, ids=[m[0] for m in MISSES])
def test_near_misses_leave_the_rules_quiet(
    case: str, kwargs: dict[str, object], cfg: ListPolicy
) -> None:
    decision = decide(cfg, **kwargs)
    assert decision.rules in ((), ("non_member",), ("unauthenticated",)), decision
    if case == "named poster is no non-member":
        assert decision.rules == ("unauthenticated",)  # held for lack of proof, not membership
    elif case == "moderation flag of a non-member":
        assert decision.rules == ("non_member",)
    else:
        assert decision == Decision("accept", (), False, ())


def test_actions_rank_discard_over_reject_over_hold_over_accept() -> None:
    assert ACTIONS == ("accept", "hold", "reject", "discard")


def test_the_strongest_action_wins_and_every_reason_is_kept() -> None:
    cfg = ListPolicy(max_size="reject")
    decision = decide(cfg, membership=Membership(), size=6 * 1024 * 1024)
    assert decision.rules == ("non_member", "max_size")
    assert decision.action == "reject"
    assert len(decision.reasons) == 2

    decision = decide(ListPolicy(), membership=Membership(is_member=True, banned=True), seen=True)
    assert (decision.action, decision.rules) == ("discard", ("banned", "duplicate"))


def test_an_accepting_rule_never_weakens_a_hold() -> None:
    cfg = ListPolicy(non_member="accept")
    assert decide(cfg, membership=Membership()).action == "accept"
    held = decide(cfg, membership=Membership(), text=with_headers(To="someone@else.org"))
    assert (held.action, held.rules) == ("hold", ("non_member", "implicit_destination"))


def test_a_loop_is_always_discarded_and_stops_the_walk() -> None:
    looped = with_headers(X_BeenThere=LIST, To="x@y.org")
    decision = decide(ListPolicy(), text=looped, membership=Membership(banned=True))
    assert (decision.action, decision.rules, decision.notify_sender) == (
        "discard",
        ("loop",),
        False,
    )


# ---- announce-only (Legislative Alerts) and sender authentication ----------------------


ALERTS = ListPolicy(announce_only=True)


def test_named_poster_with_aligned_pass_posts_to_announce_only_list() -> None:
    decision = decide(ALERTS, membership=STAFF, size=50 * 1024 * 1024)
    assert decision.action == "accept"
    assert decision.rules == ("pre_approved",)  # the shortcut skips size and the rest
    assert decision.notify_sender is False


def test_named_poster_without_aligned_pass_is_held_never_sent() -> None:
    decision = decide(ALERTS, membership=STAFF, auth=NO_PASS)
    assert decision.action == "hold"
    assert decision.rules == ("unauthenticated",)
    assert "announce-only list" in decision.reasons[0]
    assert decision.notify_sender is False


def test_named_poster_without_pass_is_held_on_an_open_list_too() -> None:
    decision = decide(ListPolicy(), membership=STAFF, auth=NO_PASS)
    assert (decision.action, decision.rules) == ("hold", ("unauthenticated",))


def test_a_member_who_is_no_named_poster_is_rejected_with_a_notice() -> None:
    decision = decide(ALERTS)
    assert (decision.action, decision.notify_sender) == ("reject", True)


def test_announce_only_can_hold_others_instead() -> None:
    decision = decide(replace(ALERTS, not_named_poster="hold"))
    assert (decision.action, decision.rules) == ("hold", ("not_named_poster",))


FORGED = with_headers(
    From="Legislative Staff <alerts@cacities.org>",
    Authentication_Results="mx.lists.cacities.org; dkim=pass header.d=cacities.org; dmarc=pass",
)
OUR_MTA = (
    "Authentication-Results: mx.lists.cacities.org; dkim=none; spf=softfail "
    "smtp.mailfrom=evil.example; dmarc=fail header.from=cacities.org\n"
)


@pytest.mark.parametrize(
    ("received", "trusted"),
    [(FORGED, "inbound.cacities.org"), (OUR_MTA + FORGED, "mx.lists.cacities.org")],
    ids=["forger-used-a-name-we-do-not-trust", "our-mta-header-on-top-wins"],
)
def test_forged_from_and_authentication_results_of_a_named_poster_are_held(
    received: str, trusted: str
) -> None:
    msg = message_from_string(received, policy=policy.default)
    auth = verdict_from_authres(msg, trusted_ids={trusted})
    assert not auth.authenticated
    decision = decide(ALERTS, text=received, membership=STAFF, auth=auth, envelope="x@evil.example")
    assert (decision.action, decision.rules) == ("hold", ("unauthenticated",))


def test_named_poster_with_trusted_authentication_results_is_accepted() -> None:
    text = with_headers(From="Legislative Staff <alerts@cacities.org>")
    header = "Authentication-Results: mx.lists.cacities.org; dkim=pass header.d=cacities.org\n"
    auth = verdict_from_authres(
        message_from_string(header + text, policy=policy.default),
        trusted_ids={"mx.lists.cacities.org"},
    )
    assert auth.dkim_aligned and auth.source == "authres"
    assert decide(ALERTS, text=text, membership=STAFF, auth=auth).action == "accept"


def test_a_verdict_about_another_author_proves_nothing() -> None:
    other = AuthVerdict(dkim_aligned=True, source="dkim", from_domain="cacities.org")
    decision = decide(ALERTS, membership=STAFF, auth=other)
    assert (decision.action, decision.rules) == ("hold", ("unauthenticated",))
    two_authors = with_headers(From="pat@ci.berkeley.ca.us, boss@ci.berkeley.ca.us")
    assert decide(ALERTS, text=two_authors, membership=STAFF).action == "hold"


def test_emergency_moderation_holds_even_an_authenticated_named_poster() -> None:
    decision = decide(replace(ALERTS, emergency_moderation=True), membership=STAFF)
    assert (decision.action, decision.rules) == ("hold", ("emergency", "pre_approved"))


def test_an_out_of_office_reply_from_a_named_poster_is_not_distributed() -> None:
    ooo = with_headers(Auto_Submitted="auto-replied", Subject="Out of office")
    decision = decide(ALERTS, text=ooo, membership=STAFF)
    assert decision.action == "hold"
    assert decision.notify_sender is False  # RFC 3834: never answer an auto-reply


def test_a_moderated_list_holds_unauthenticated_posts_with_both_reasons() -> None:
    decision = decide(ListPolicy(moderated=True), auth=NO_PASS)
    assert (decision.action, decision.rules) == ("hold", ("list_moderation", "unauthenticated"))


def test_unauthenticated_posts_may_be_discarded_but_never_accepted() -> None:
    cfg = ListPolicy(announce_only=True, unauthenticated="discard")
    assert decide(cfg, membership=STAFF, auth=NO_PASS).action == "discard"
    with pytest.raises(ValueError, match="unauthenticated must be one of hold, discard"):
        ListPolicy(unauthenticated="accept")


# ---- backscatter ---------------------------------------------------------------------------


def test_rejecting_an_unauthenticated_sender_becomes_a_silent_discard() -> None:
    decision = decide(ListPolicy(), membership=Membership(banned=True), auth=NO_PASS)
    assert decision.action == "discard"
    assert decision.reasons[-1] == BACKSCATTER_NOTE
    assert "banned" in decision.reasons[0]
    assert decision.notify_sender is False


def test_an_authenticated_sender_is_told_of_a_rejection() -> None:
    decision = decide(ListPolicy(), membership=Membership(banned=True))
    assert (decision.action, decision.notify_sender) == ("reject", True)


@pytest.mark.parametrize(
    ("cfg", "kwargs", "told"),
    [
        (ListPolicy(), {"membership": Membership()}, True),
        (ListPolicy(notify_on_hold=False), {"membership": Membership()}, False),
        (ListPolicy(), {"membership": Membership(), "auth": NO_PASS}, False),
        (ListPolicy(), {"text": with_headers(Precedence="bulk")}, False),
        (ListPolicy(), {"seen": True}, False),
        (ListPolicy(), {}, False),
    ],
    ids=["held", "held-quietly", "held-unauthenticated", "bulk", "duplicate", "accepted"],
)
def test_who_is_told_about_a_decision(
    cfg: ListPolicy, kwargs: dict[str, object], told: bool
) -> None:
    assert decide(cfg, **kwargs).notify_sender is told


# ---- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"non_member": "drop"}, "non_member must be one of accept, hold, reject, discard"),
        ({"auto_submitted": "reject"}, "auto_submitted must be one of hold, discard"),
        ({"size_limit": -1}, "size_limit must be an integer >= 0"),
        ({"suspicious_headers": (("Subject", "(unclosed"),)}, "not a valid regex"),
        ({"acceptable_aliases": ("^[",)}, "not a valid regex"),
    ],
)
def test_a_bad_setting_fails_early_with_the_fix_in_the_message(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ListPolicy(**changes)  # type: ignore[arg-type]


def test_every_rule_action_is_a_field_with_a_valid_default() -> None:
    cfg = ListPolicy()
    fixed = {rule.name for rule in RULES if rule.fixed}
    assert set(ACTION_CHOICES) == {rule.name for rule in RULES} - fixed
    for name, allowed in ACTION_CHOICES.items():
        assert getattr(cfg, name) in allowed


def test_policy_from_stored_config() -> None:
    cfg = policy_from_config(
        {
            "non_member": "reject",
            "duplicate_window": 3600,
            "suspicious_headers": [["X-Spam-Flag", "yes"]],
            "acceptable_aliases": ["clerks@cacities.org"],
        },
        announce_only=True,
    )
    assert cfg.non_member == "reject" and cfg.announce_only
    assert cfg.duplicate_window == timedelta(hours=1)
    assert cfg.suspicious_headers == (("X-Spam-Flag", "yes"),)
    assert cfg.acceptable_aliases == ("clerks@cacities.org",)
    with pytest.raises(ValueError, match="unknown posting policy setting"):
        policy_from_config({"max_size_kb": 40})
