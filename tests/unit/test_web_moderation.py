"""The moderation queue in a browser: see held messages safely, approve, reject, discard."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import web_staff_site
from sqlalchemy import insert, select
from web_staff_site import ADMIN, MODERATOR, Site, page_text

from listservs.models_moderation import HeldRecord
from mailer.db import reading, utcnow, writing
from mailer.models import Held, Inbound, Outbound, Post

fast_hashing, staff_template, site = (web_staff_site.fast_hashing,
                                       web_staff_site.staff_template, web_staff_site.site)

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"

HOSTILE = (
    b"From: Mallory <mallory@example.net>\r\nTo: city-clerks@lists.cacities.org\r\n"
    b"Subject: <script>alert('subject')</script> budget\r\nMessage-ID: <h1@example.net>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"
    b"--outer\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
    b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Plain words <b>not bold</b> & more\r\n"
    b"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p onclick=\"steal()\">Dear clerks</p><script>alert(1)</script>"
    b"<img src=\"https://tracker.example/pixel.gif\" onerror=\"alert(2)\" alt=\"logo\">"
    b"<a href=\"javascript:alert(3)\">click</a><iframe src=\"https://evil.example\"></iframe>"
    b"<form action=\"https://evil.example\"><input name=pw></form>"
    b"<style>body{display:none}</style><svg onload=alert(4)></svg>\r\n"
    b"--alt--\r\n"
    b"--outer\r\nContent-Type: application/pdf\r\n"
    b"Content-Disposition: attachment; filename=\"minutes.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--outer--\r\n")


def hold(site: Site, raw: bytes, *, list_name: str = "city-clerks", sender: str = "",
         subject: str = "", authenticated: bool = True) -> int:
    list_id = site.list_id(list_name)
    with writing(site.engine) as conn:
        inbound = conn.execute(insert(Inbound).values(
            mail_from=sender, rcpt_to=[], size=len(raw), raw=raw, state="done",
            received_at=utcnow()).returning(Inbound.id)).scalar_one()
        held = conn.execute(insert(Held).values(
            inbound_id=inbound, list_id=list_id, sender=sender, subject=subject,
            reasons=["the sender is not a member"], state="held", received_at=utcnow()
        ).returning(Held.id)).scalar_one()
        conn.execute(insert(HeldRecord).values(held_id=held, notify_sender=authenticated))
    return held


def plain(sender: str = "carol@example.org", subject: str = "Budget question",
          body: str = "Has anyone adopted the new budget template?") -> bytes:
    return (f"From: {sender}\r\nTo: city-clerks@lists.cacities.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash(body))}@example.org>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def outbound_texts(site: Site) -> list[tuple[str, str]]:
    with reading(site.engine) as conn:
        rows = conn.execute(select(Outbound.kind, Outbound.body)).all()
    out = []
    for kind, body in rows:
        msg = message_from_bytes(bytes(body), policy=policy.default)
        part = msg.get_body(("plain",))
        out.append((kind, str(msg["To"]) + "\n" + (part.get_content() if part else "")))
    return out


def test_moderator_sees_their_queue_and_only_theirs(site: Site):
    hold(site, plain(), sender="carol@example.org", subject="Budget question")
    hold(site, plain(subject="Hydrants"), list_name="fire-chiefs", sender="dan@example.org",
         subject="Hydrants")
    site.sign_in(MODERATOR)
    index = page_text(site.client.get("/moderation/").text)
    assert "City Clerks department" in index and "Fire Chiefs" not in index
    queue = page_text(site.client.get("/moderation/city-clerks/").text)
    assert "carol@example.org" in queue and "Budget question" in queue
    assert "the sender is not a member" in queue
    assert site.client.get("/moderation/fire-chiefs/").status_code == 403


def test_hostile_html_is_shown_without_script_or_remote_images(site: Site):
    held = hold(site, HOSTILE, sender="mallory@example.net",
                subject="<script>alert('subject')</script> budget")
    site.sign_in(MODERATOR)
    page = site.client.get(f"/moderation/city-clerks/{held}")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "https:" not in csp
    html = page.text
    for bad in ("<script", "onclick", "onerror", "onload", "javascript:", "<iframe", "<svg",
                "evil.example", "tracker.example", "<style>body", "pw"):
        assert bad not in html, bad
    words = page_text(html)
    assert "Plain words <b>not bold</b> & more" in words  # text shown as text
    assert "Dear clerks" in words and "click" in words
    assert "<script>alert('subject')</script> budget" in words  # escaped, not run
    assert "minutes.pdf" in words and "application/pdf" in words
    assert "1 image not loaded" in words

    shown = site.client.get(f"/moderation/city-clerks/{held}?images=1")
    assert 'src="https://tracker.example/pixel.gif"' in shown.text
    assert "img-src 'self' https:" in shown.headers["content-security-policy"]
    assert "onerror" not in shown.text and "<script" not in shown.text


@pytest.mark.parametrize("name", ["imaptools__attachment_inline1.eml",
                                  "imaptools__mime_emails_raw_email_with_illegal_boundary.eml",
                                  "djmailbox__message_with_koi8r_filename_attachments.eml"])
def test_real_mail_from_the_corpus_is_shown(site: Site, name: str):
    raw = (CORPUS / "inbound" / name).read_bytes()
    held = hold(site, raw, sender="someone@example.org", subject=name)
    site.sign_in(ADMIN)
    page = site.client.get(f"/moderation/city-clerks/{held}")
    assert page.status_code == 200 and "<script" not in page.text
    assert "Approve" in page_text(page.text)


def test_approve_sends_the_post_and_empties_the_queue(site: Site):
    held = hold(site, plain(), sender="carol@example.org", subject="Budget question")
    site.sign_in(MODERATOR)
    done = site.submit(f"/moderation/city-clerks/{held}", f"/moderation/city-clerks/{held}",
                       action="approve")
    assert done.status_code == 303
    queue = site.client.get(done.headers["location"])
    assert "Approved" in page_text(queue.text)
    assert "No message is waiting" in page_text(queue.text)
    with reading(site.engine) as conn:
        assert conn.execute(select(Post.subject)).scalars().all() == ["Budget question"]
        assert conn.execute(select(Held.decided_by)).scalar_one() == MODERATOR


def test_reject_tells_the_poster_the_reason(site: Site):
    held = hold(site, plain(), sender="carol@example.org", subject="Budget question")
    site.sign_in(MODERATOR)
    done = site.submit(f"/moderation/city-clerks/{held}", f"/moderation/city-clerks/{held}",
                       action="reject", reason="Please ask this on the fiscal officers list.")
    assert "Rejected: the poster is told" in page_text(site.client.get(
        done.headers["location"]).text)
    ((_kind, text),) = outbound_texts(site)
    assert "carol@example.org" in text
    assert "Please ask this on the fiscal officers list." in text


def test_reject_of_an_unverified_poster_tells_nobody(site: Site):
    held = hold(site, plain(), sender="forged@example.org", authenticated=False)
    site.sign_in(MODERATOR)
    done = site.submit(f"/moderation/city-clerks/{held}", f"/moderation/city-clerks/{held}",
                       action="reject", reason="no")
    assert "nobody is told" in page_text(site.client.get(done.headers["location"]).text)
    assert outbound_texts(site) == []


def test_discard_and_a_second_decision(site: Site):
    held = hold(site, plain(), sender="carol@example.org")
    site.sign_in(MODERATOR)
    page = site.client.get(f"/moderation/city-clerks/{held}")
    fields = site.form(page.text, f"/moderation/city-clerks/{held}")["fields"]
    first = site.client.post(f"/moderation/city-clerks/{held}",
                             data={**fields, "action": "discard"}, follow_redirects=False)
    assert first.status_code == 303 and outbound_texts(site) == []
    again = site.client.post(f"/moderation/city-clerks/{held}",
                             data={**fields, "action": "approve"})
    assert again.status_code == 409
    assert "was already discarded by mod@league.org" in page_text(again.text)
    bad = site.client.post(f"/moderation/city-clerks/{held}", data={**fields, "action": "x"})
    assert bad.status_code == 400


def test_a_message_is_only_reachable_through_its_own_list(site: Site):
    held = hold(site, plain(), list_name="fire-chiefs", sender="dan@example.org")
    site.sign_in(MODERATOR)
    # Moderating city-clerks does not open a fire-chiefs message under the city-clerks path.
    assert site.client.get(f"/moderation/city-clerks/{held}").status_code == 404
    page = site.client.get("/moderation/city-clerks/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    answer = site.client.post(f"/moderation/city-clerks/{held}",
                              data={"csrf_token": token, "action": "approve"})
    assert answer.status_code == 404
    with reading(site.engine) as conn:
        assert conn.execute(select(Held.state)).scalar_one() == "held"
