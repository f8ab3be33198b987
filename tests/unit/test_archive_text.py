"""The archive's pure parts: threading, what a page shows of broken mail, search syntax."""

from __future__ import annotations

import datetime as dt

from listservs.archive_search import fts5_query, terms
from listservs.archive_text import archive_entry, attachment, message_view, served_type
from listservs.archive_thread import ThreadItem, flatten, normal_subject, thread

T0 = dt.datetime(2025, 3, 4, 18, 0, tzinfo=dt.UTC)


def item(key: int, mid: str, subject: str, *refs: str) -> ThreadItem:
    return ThreadItem(key, mid, refs, subject, T0 + dt.timedelta(hours=key))


def test_replies_hang_under_their_nearest_archived_ancestor() -> None:
    roots = thread([
        item(3, "<c>", "Re: Budget", "<a>", "<missing>", "<c-parent-gone>"),  # ancestor gone
        item(1, "<a>", "Budget"),
        item(2, "<b>", "Re: Budget", "<a>"),
        item(4, "<d>", "Re: [Clerks] RE: budget"),  # no references: joins by subject
        item(5, "<e>", "Parking"),
        item(6, "<x>", "loop", "<y>"), item(7, "<y>", "loop", "<x>"),  # a loop is cut
    ])
    assert [(depth, i.key) for depth, i in flatten(roots)] == [
        (0, 1), (1, 2), (1, 3), (1, 4), (0, 5), (0, 7), (1, 6)]
    assert normal_subject("Re: [City Clerks] Fwd: AW: Budget  2025") == "budget 2025"


def test_broken_mail_is_shown_not_crashed() -> None:
    raw = (b"From: =?x-unknown?q?Bad?= <b@example.org>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
           b"Date: not a date\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
           b"--zz\r\nContent-Type: text/plain; charset=x-nonsense\r\n\r\nHello \xff\xfe there\r\n"
           b"--zz\r\nContent-Type: application/pdf; name=a.pdf\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n")  # no closing line
    received = T0
    entry = archive_entry(raw, received_at=received)
    assert entry.sent_at == received and entry.subject == "café"
    assert "Hello" in entry.body and "there" in entry.body
    view = message_view(raw)
    assert "Hello" in view.text and view.date is None
    assert [a.filename for a in view.attachments] == ["a.pdf"]
    name, kind, _ = attachment(raw, view.attachments[0].index) or ("", "", b"")
    assert (name, kind) == ("a.pdf", "application/pdf")
    assert attachment(raw, 99) is None
    assert served_type("text/html") == served_type("image/svg+xml") == "application/octet-stream"
    assert served_type("bad type; x=<y>") == "application/octet-stream"
    assert archive_entry(b"", received_at=received).body == ""


def test_what_people_type_becomes_a_safe_fts5_query() -> None:
    assert terms('budget "consent  calendar" -draft') == [
        (False, "budget"), (False, "consent calendar"), (True, "draft")]
    assert fts5_query('budget "consent calendar" -draft') == (
        '("budget" AND "consent calendar") NOT "draft"')
    assert fts5_query('NEAR(a OR b*') == '"NEAR(a" AND "OR" AND "b*"'
    assert fts5_query('say "he said ""hi"""') == '"say" AND "he said" AND "hi"'
    assert fts5_query("-only -excluded") == "" and fts5_query('" "') == ""
