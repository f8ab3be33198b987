"""Email commands are read the way people write replies: pure parsing, no servers."""

from __future__ import annotations

import base64
from email.message import EmailMessage

from listservs.commands import parse_commands, reply_decision, reply_lines, strip_subject
from listservs.mailtext import body_text, html_to_text, parse, safe_excerpt
from listservs.rfc3834 import never_answer


def message(body: str, *, subject: str = "", html: bool = False, cte: str | None = None,
            charset: str = "utf-8", headers: dict[str, str] | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Zoë Example <zoe@example.org>"
    msg["To"] = "city-clerks-request@lists.cacities.org"
    msg["Subject"] = subject
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body, subtype="html" if html else "plain", charset=charset, cte=cte)
    return parse(msg.as_bytes())


def verbs(msg: EmailMessage) -> list[tuple[str, tuple[str, ...]]]:
    return [(c.verb, c.args) for c in parse_commands(msg).commands]


def test_command_in_subject_with_reply_markers_and_list_prefix() -> None:
    assert strip_subject("Re: AW: [City Clerks] Fwd: subscribe") == "subscribe"
    assert verbs(message("", subject="RE: [City Clerks] join")) == [("join", ())]


def test_body_commands_stop_at_signature_and_at_prose() -> None:
    msg = message("join\ndigest on\n-- \nwho\n")
    assert verbs(msg) == [("join", ()), ("digest", ("on",))]
    msg = message("leave\nThanks for all the good discussions, everyone!\nwho\n")
    parsed = parse_commands(msg)
    assert [c.verb for c in parsed.commands] == ["leave"]
    assert parsed.ignored == ("Thanks for all the good discussions, everyone!",)


def test_quoted_reply_lines_and_attribution_are_not_commands() -> None:
    body = ("nomail\n\nOn Tue, Nov 3, 2026 at 10:00 AM City Clerks <\n"
            "city-clerks-request@lists.cacities.org> wrote:\n> leave\n> who\n")
    assert verbs(message(body, subject="Re: results of your commands")) == [("nomail", ())]
    assert reply_lines("> approve\nLe mar. 3 nov. 2026, Alice a écrit :\nok") == ["ok"]


def test_outlook_original_message_block_ends_the_reply() -> None:
    body = "approve\n\n-----Original Message-----\nFrom: list\nreject spam\n"
    assert reply_lines(body) == ["approve"]
    body = "help\n________________________________\nFrom: x\nSent: y\nleave\n"
    assert verbs(message(body)) == [("help", ())]


def test_base64_and_quoted_printable_bodies_in_other_charsets() -> None:
    msg = message("abonné? join\n", cte="base64")
    assert "abonné" in body_text(msg)
    assert verbs(message("subscribe digest\r\n", cte="base64")) == [("join", ("digest",))]
    assert verbs(message("unsubscribe\n" + "é" * 100, cte="quoted-printable",
                         charset="iso-8859-1")) == [("leave", ())]


def test_non_ascii_full_width_and_punctuation_are_tolerated() -> None:
    assert verbs(message("ｊｏｉｎ\n")) == [("join", ())]  # full-width, from an IME
    assert verbs(message("Help!\n")) == [("help", ())]
    decision = reply_decision(message("reject Ce message n'a rien à faire ici — merci\n"))
    assert decision is not None and decision.action == "reject"
    assert decision.reason == "Ce message n'a rien à faire ici — merci"


def test_html_only_mail_is_read_as_text_with_blockquotes_quoted() -> None:
    html = ("<html><head><style>p{}</style></head><body><div>Approve</div>"
            "<div class='gmail_quote'>On Tue wrote:<blockquote><p>discard</p></blockquote>"
            "</div></body></html>")
    assert html_to_text(html).splitlines()[0] == "Approve"
    assert "> discard" in html_to_text(html)
    decision = reply_decision(message(html, html=True))
    assert decision is not None and decision.action == "approve"
    assert verbs(message("<p>join</p><p>digest&nbsp;on</p>", html=True)) == [
        ("join", ()), ("digest", ("on",))]


def test_decision_is_the_first_own_line_only() -> None:
    assert reply_decision(message("Looks fine to me\napprove\n")) is None
    assert reply_decision(message("> approve\n", subject="Re: held")) is None
    quoted_only = message("> text of the notice\n", subject="Re: discard")
    decision = reply_decision(quoted_only)
    assert decision is not None and decision.action == "discard"
    multi = reply_decision(message("reject\nNot about city clerks.\nPlease ask on PIO.\n\nBob"))
    assert multi is not None and multi.reason == "Not about city clerks. Please ask on PIO."


def test_confirmation_token_is_found_in_the_subject() -> None:
    token = "m1c-t9x2pc-abcdefghijklm"
    msg = message("approve", subject=f"Re: city-clerks: held for moderation (confirm {token})")
    assert parse_commands(msg).token == token
    assert parse_commands(message(f"confirm {token}\n")).token == token


def test_sentences_that_start_with_a_command_word_are_prose() -> None:
    assert verbs(message("help me understand the budget rules please\n")) == []
    assert verbs(message("digest of last week's posts\n")) == []


def test_automatic_mail_is_never_answered() -> None:
    domain = "lists.cacities.org"
    plain = message("join")
    assert never_answer(plain, envelope_sender="zoe@example.org", list_domain=domain) is None
    for headers in ({"Auto-Submitted": "auto-replied"}, {"Precedence": "bulk"},
                    {"Precedence": "junk"}, {"List-Id": "<x.example.org>"},
                    {"X-Autoreply": "yes"}):
        msg = message("join", headers=headers)
        assert never_answer(msg, envelope_sender="zoe@example.org", list_domain=domain)
    assert never_answer(plain, envelope_sender="", list_domain=domain)
    assert never_answer(plain, envelope_sender="MAILER-DAEMON@example.org", list_domain=domain)
    assert never_answer(plain, envelope_sender="city-clerks-bounces@lists.cacities.org",
                        list_domain=domain)
    ok = message("join", headers={"Auto-Submitted": "no"})
    assert never_answer(ok, envelope_sender="zoe@example.org", list_domain=domain) is None


def test_safe_excerpt_is_plain_short_and_free_of_tricks() -> None:
    html = ("<p>Buy <b>now</b> \u202eevil\u202c <script>alert(1)</script></p>"
            + "<p>line</p>" * 100)
    excerpt = safe_excerpt(message(html, html=True).as_bytes())
    assert "<" not in excerpt and "alert" not in excerpt and "\u202e" not in excerpt
    assert excerpt.startswith("Buy now evil")
    assert excerpt.endswith("[...]") and len(excerpt.splitlines()) <= 26
    raw = b"From: a@b\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\nhello \xff\r\n"
    assert safe_excerpt(raw).startswith("hello")
    attachment_only = base64.b64encode(b"%PDF")
    raw = (b"From: a@b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64"
           b"\r\n\r\n" + attachment_only + b"\r\n")
    assert safe_excerpt(raw) == "(no readable text)"
