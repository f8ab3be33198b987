"""Per-list content filtering: one test per rule, as members see the copy they get."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from listservs.facts import Membership
from listservs.lists import ListInfo
from listservs.mimefilter import ContentRules, content_rules, filter_content
from listservs.posting import PostPlan, plan_post
from mailer.db import utcnow
from mailer.mimetree import decoded_leaves
from mailer.settings import Settings

SETTINGS = Settings(secret_keys=("test-secret-key-0123456789",), base_url="https://l.example")
HEAD = (b"From: Pat <pat@fresno.gov>\r\nTo: city-clerks@lists.cacities.org\r\n"
        b"Subject: Minutes\r\nMessage-ID: <m1@fresno.gov>\r\nMIME-Version: 1.0\r\n")


def mixed(*parts: bytes) -> bytes:
    body = b"".join(b"--B\r\n" + p + b"\r\n" for p in parts)
    return HEAD + b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n' + body + b"--B--\r\n"


TEXT = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nMinutes attached.\r\n"
PDF = (b'Content-Type: application/pdf; name="minutes.pdf"\r\n'
       b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n")
EXE = (b'Content-Type: application/octet-stream; name="invoice.exe"\r\n'
       b"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n")
SCRIPT = (b'Content-Type: application/javascript; name="x.txt"\r\n\r\nalert(1)\r\n')
VIDEO = (b'Content-Type: video/mp4; name="clip.mp4"\r\n'
         b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n")
ALTERNATIVE = (b'Content-Type: multipart/alternative; boundary="A"\r\n\r\n'
               b"--A\r\nContent-Type: text/plain\r\n\r\nplain words\r\n"
               b"--A\r\nContent-Type: text/html\r\n\r\n<p>html <b>words</b></p>\r\n--A--")


def parts(raw: bytes) -> list[tuple[str, str | None]]:
    message = message_from_bytes(raw, policy=policy.default)
    return [(p.get_content_type(), p.get_filename()) for p in message.walk()
            if not p.is_multipart()]


def header(raw: bytes, name: str) -> str | None:
    value = message_from_bytes(raw, policy=policy.default)[name]
    return None if value is None else str(value)


def test_executables_are_removed_by_file_name_and_noted() -> None:
    raw = mixed(TEXT, EXE, PDF)
    done = filter_content(raw, ContentRules())
    assert done.removed == ("invoice.exe (application/octet-stream)",)
    assert parts(done.raw) == [("text/plain", None), ("application/pdf", "minutes.pdf")]
    assert header(done.raw, "X-Content-Filtered-By") == (
        "citymail (removed invoice.exe (application/octet-stream))")
    kept = decoded_leaves(raw)
    assert decoded_leaves(done.raw) == [kept[0], kept[2]]  # the rest exactly as sent
    assert mixed(TEXT, PDF).split(b"\r\n\r\n", 1)[1] in done.raw


def test_scripts_are_removed_by_type_whatever_their_name() -> None:
    done = filter_content(mixed(TEXT, SCRIPT), ContentRules())
    assert done.removed == ("x.txt (application/javascript)",)


def test_a_list_may_filter_a_whole_main_type() -> None:
    done = filter_content(mixed(TEXT, VIDEO, PDF), ContentRules(filter_types=("video",)))
    assert [kind for kind, _ in parts(done.raw)] == ["text/plain", "application/pdf"]


def test_pass_types_keeps_only_what_is_listed() -> None:
    rules = ContentRules(pass_types=("text/plain", "image"))
    done = filter_content(mixed(TEXT, PDF), rules)
    assert parts(done.raw) == [("text/plain", None)]
    assert done.removed == ("minutes.pdf (application/pdf)",)


def test_office_documents_images_and_pdf_pass_by_default() -> None:
    docx = (b'Content-Type: application/vnd.openxmlformats-officedocument.wordprocessingml'
            b'.document; name="a.docx"\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n')
    png = (b'Content-Type: image/png; name="m.png"\r\n'
           b"Content-Transfer-Encoding: base64\r\n\r\niVBO\r\n")
    raw = mixed(TEXT, PDF, docx, png)
    done = filter_content(raw, ContentRules())
    assert not done.changed and done.raw is raw


def test_a_multipart_emptied_by_the_filter_goes_too() -> None:
    inner = b'Content-Type: multipart/mixed; boundary="C"\r\n\r\n--C\r\n' + EXE + b"\r\n--C--"
    done = filter_content(mixed(TEXT, inner), ContentRules())
    assert parts(done.raw) == [("text/plain", None)]


def test_collapse_alternatives_keeps_the_first_branch() -> None:
    done = filter_content(mixed(ALTERNATIVE, PDF), ContentRules(collapse_alternatives=True))
    assert parts(done.raw) == [("text/plain", None), ("application/pdf", "minutes.pdf")]
    assert "alternatives collapsed" in (header(done.raw, "X-Content-Filtered-By") or "")


def test_collapse_of_a_top_level_alternative() -> None:
    raw = HEAD + ALTERNATIVE + b"\r\n"
    done = filter_content(raw, ContentRules(collapse_alternatives=True))
    message = message_from_bytes(done.raw, policy=policy.default)
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == "plain words\r\n"


def test_convert_html_to_plaintext() -> None:
    done = filter_content(mixed(ALTERNATIVE), ContentRules(convert_html_to_plaintext=True))
    message = message_from_bytes(done.raw, policy=policy.default)
    texts = [p.get_content() for p in message.walk() if p.get_content_type() == "text/plain"]
    assert texts == ["plain words", "html words\r\n"]  # the first branch as sent


def test_signed_content_is_never_looked_into() -> None:
    signed = (b'Content-Type: multipart/signed; boundary="S"; protocol="application/pgp-'
              b'signature"\r\n\r\n--S\r\n' + EXE + b"\r\n--S\r\nContent-Type: application/pgp-"
              b"signature\r\n\r\nsig\r\n--S--")
    raw = mixed(TEXT, signed)
    assert filter_content(raw, ContentRules()).raw is raw


def test_filtering_off_leaves_the_post_alone() -> None:
    raw = mixed(TEXT, EXE)
    assert filter_content(raw, ContentRules(filter_content=False)).raw is raw


def test_settings_from_a_lists_config() -> None:
    rules = content_rules({"filter_extensions": [".ZIP"], "filter_action": "reject"})
    assert (rules.filter_extensions, rules.filter_action) == (("zip",), "reject")
    with pytest.raises(ValueError, match="filter_action must be one of reject, hold"):
        content_rules({"filter_action": "bounce"})


# -- when nothing is left: the list's filter_action ---------------------------------------
def plan(raw: bytes, *, authenticated: bool = False, **config: object) -> PostPlan:
    if authenticated:  # the border MTA vouched for the sender
        raw = b"Authentication-Results: mx.cacities.org; dkim=pass header.d=fresno.gov\r\n" + raw
    info = ListInfo(7, "city-clerks", "list", "City Clerks department", "City Clerks", "",
                    None, False, "personalised", "", dict(config))
    settings = Settings(secret_keys=SETTINGS.secret_keys, base_url=SETTINGS.base_url,
                        trusted_authserv_ids=("mx.cacities.org",))
    return plan_post(raw, info=info, settings=settings, envelope_sender="pat@fresno.gov",
                     lookup=lambda _s: Membership(is_member=True), seen=lambda _m: False,
                     now=utcnow())


def test_a_post_of_only_an_executable_is_held_by_default() -> None:
    result = plan(mixed(EXE))
    assert result.action == "hold" and result.body is None
    assert result.reasons[-1] == ("content filter: nothing left to send after removing "
                                  "invoice.exe (application/octet-stream)")


@pytest.mark.parametrize(("action", "authenticated", "expected", "told"), [
    ("discard", False, "discard", False),
    ("reject", True, "reject", True),
    ("reject", False, "discard", False),  # no backscatter to an unproven sender
])
def test_filter_action_decides_an_emptied_post(action: str, authenticated: bool,
                                               expected: str, told: bool) -> None:
    result = plan(mixed(EXE), authenticated=authenticated, filter_action=action)
    assert (result.action, result.notify_sender) == (expected, told)


def test_members_get_the_filtered_copy_with_the_footer() -> None:
    result = plan(mixed(TEXT, EXE, PDF))
    assert result.action == "accept" and result.body is not None
    message: EmailMessage = message_from_bytes(result.body, policy=policy.default)  # type: ignore[assignment]
    assert [f for _, f in parts(result.body)] == [None, "minutes.pdf"]
    assert "City Clerks department mailing list" in message.get_body(("plain",)).get_content()
    assert "invoice.exe" in str(message["X-Content-Filtered-By"])


def test_an_executable_in_damaged_mime_holds_the_post() -> None:
    broken = HEAD + (b'Content-Type: multipart/mixed; boundary="NOT-THERE"\r\n\r\n--B\r\n'
                     + TEXT + b"\r\n--B\r\n" + EXE + b"\r\n--B--\r\n")
    result = plan(broken)
    assert result.action == "hold"
    assert result.reasons[-1] == ("content filter: damaged MIME hides invoice.exe, which "
                                  "cannot be removed safely")
    assert filter_content(mixed(TEXT, PDF).replace(b"--B--", b""), ContentRules()).empty \
        is False  # damage alone, with nothing filtered in it, is sent as received
