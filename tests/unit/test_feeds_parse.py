"""parse_feed: what a newsletter editor gets from good, odd and hostile feeds."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletters.feeds import FeedItem, ParsedFeed, parse_feed, to_json

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>Cal Cities News</title><link>https://www.calcities.org/news</link>
<item><title>Budget adopted</title><link>https://www.calcities.org/news/budget</link>
<guid isPermaLink="false">news-1001</guid><pubDate>Tue, 07 May 2024 09:30:00 -0700</pubDate>
<description>Short summary</description>
<content:encoded><![CDATA[<p>The <b>full</b> story.</p>]]></content:encoded></item>
<item><title>No guid here</title><link>https://www.calcities.org/news/no-guid</link></item>
<item><title>Neither guid nor link</title><description>Text only</description></item>
</channel></rss>"""


def test_a_good_feed_gives_items_in_document_order() -> None:
    feed = parse_feed(RSS)
    assert (feed.title, feed.link, feed.error, feed.warning) == (
        "Cal Cities News",
        "https://www.calcities.org/news",
        None,
        None,
    )
    first = feed.items[0]
    assert first == FeedItem(
        guid="news-1001",
        title="Budget adopted",
        link="https://www.calcities.org/news/budget",
        published=datetime(2024, 5, 7, 16, 30, tzinfo=UTC),
        html="<p>The <b>full</b> story.</p>",  # content:encoded wins over the description
    )
    assert [i.title for i in feed.items] == [
        "Budget adopted",
        "No guid here",
        "Neither guid nor link",
    ]


def test_guid_falls_back_to_the_link_then_to_a_stable_hash() -> None:
    items = parse_feed(RSS).items
    assert items[1].guid == "https://www.calcities.org/news/no-guid"
    assert items[2].guid.startswith("sha256:") and len(items[2].guid) == 7 + 64
    assert parse_feed(RSS).items[2].guid == items[2].guid  # same item, same guid, every poll
    edited = parse_feed(RSS.replace(b"Neither guid nor link", b"Another title"))
    assert edited.items[2].guid != items[2].guid


def test_to_json_has_exactly_the_cli_shape() -> None:
    shape = to_json(parse_feed(RSS))
    assert json.loads(json.dumps(shape)) == shape
    assert shape["feed"] == {"title": "Cal Cities News", "link": "https://www.calcities.org/news"}
    assert shape["error"] is None
    assert shape["items"][0] == {
        "guid": "news-1001",
        "title": "Budget adopted",
        "link": "https://www.calcities.org/news/budget",
        "published": "2024-05-07T16:30:00+00:00",
        "html": "<p>The <b>full</b> story.</p>",
    }
    assert shape["items"][1]["published"] is None
    assert to_json(parse_feed(b"")) == {
        "feed": {"title": "", "link": None},
        "items": [],
        "error": "empty document",
    }


def test_results_are_frozen_values() -> None:
    feed = parse_feed(RSS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        feed.title = "x"  # type: ignore[misc]
    assert isinstance(feed.items, tuple)


def test_atom_dates_become_utc_and_updated_stands_in_for_published() -> None:
    atom = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
    <entry><id>urn:a</id><title>a</title><updated>2024-01-31T23:30:00-08:00</updated></entry>
    <entry><id>urn:b</id><title>b</title><published>not a date</published></entry></feed>"""
    items = parse_feed(atom).items
    assert items[0].published == datetime(2024, 2, 1, 7, 30, tzinfo=UTC)
    assert items[0].published.tzinfo is UTC
    assert items[1].published is None


def test_plain_text_content_is_escaped_not_interpreted() -> None:
    atom = b"""<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>urn:a</id>
    <content type="text">Fees &lt;b&gt;rise&lt;/b&gt; &amp; fall

    Second paragraph</content></entry></feed>"""
    html = parse_feed(atom).items[0].html
    assert html == "<p>Fees &lt;b&gt;rise&lt;/b&gt; &amp; fall</p><p>Second paragraph</p>"


def test_html_content_is_preferred_to_other_content() -> None:
    atom = b"""<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>urn:a</id>
    <content type="text">plain version</content>
    <content type="html">&lt;p&gt;&lt;b&gt;rich&lt;/b&gt; version&lt;/p&gt;</content>
    </entry></feed>"""
    assert parse_feed(atom).items[0].html == "<p><b>rich</b> version</p>"


def test_charset_from_http_decides_the_decoding() -> None:
    latin = '<rss version="2.0"><channel><title>Café</title></channel></rss>'.encode("latin-1")
    assert parse_feed(latin, content_type="application/rss+xml; charset=iso-8859-1").title == "Café"
    declared = b'<?xml version="1.0" encoding="windows-1252"?>' + latin
    assert parse_feed(declared).title == "Café"


def test_a_server_default_charset_does_not_garble_a_utf8_feed() -> None:
    utf8 = '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Café – Río'
    data = (utf8 + "</title></channel></rss>").encode()
    for content_type in (
        "application/rss+xml; charset=ISO-8859-1",
        "text/xml;charset=windows-1252",
    ):
        assert parse_feed(data, content_type=content_type).title == "Café – Río"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "empty document"),
        (b" \r\n\t ", "empty document"),
        (
            b"<!DOCTYPE html><html><head><title>City</title></head><body><p>Hi</body></html>",
            "not an RSS or Atom feed: the document is an HTML page",
        ),
        (
            b'{"version": "https://jsonfeed.org/version/1.1", "items": []}',
            "not an RSS or Atom feed: the document is JSON (JSON Feed is not supported)",
        ),
        (b'<?xml version="1.0"?><catalog><book/></catalog>', "unknown root element <catalog>"),
        (b"Service Unavailable", "not an RSS or Atom feed: not XML"),
        (
            b'<rss version="2.0">\n<channel>\n<title>x</titl>\n</channel></rss>',
            "broken feed, no items could be read: mismatched tag at line 3, column 10",
        ),
    ],
)
def test_broken_input_is_reported_in_one_line(data: bytes, error: str) -> None:
    feed = parse_feed(data)
    assert feed.error is not None and error in feed.error
    assert "\n" not in feed.error
    assert feed.items == ()


def test_garbage_bytes_are_reported_never_raised() -> None:
    for seed in range(20):
        data = os.urandom(2_000 + seed * 500)
        feed = parse_feed(data)
        assert isinstance(feed, ParsedFeed) and feed.error


def test_not_even_bytes_is_reported() -> None:
    feed = parse_feed("<rss/>")  # type: ignore[arg-type]
    assert feed.error == "expected the feed as bytes, got str"


def test_an_ill_formed_feed_with_items_is_read_leniently_with_a_warning() -> None:
    sloppy = b"""<rss version="2.0"><channel><title>Caf&eacute; &amp; Co</title>
    <item><title>Open&nbsp;late</title><link>https://example.org/1</link></item>
    </channel></rss> trailing junk <<<"""
    feed = parse_feed(sloppy)
    assert feed.error is None
    assert feed.warning and "not well-formed" in feed.warning
    assert feed.title == "Café & Co"
    assert [(i.title, i.link) for i in feed.items] == [("Open\xa0late", "https://example.org/1")]


def test_feed_bytes_naming_a_file_are_data_not_a_path(tmp_path: Path) -> None:
    local = tmp_path / "feed.xml"
    local.write_bytes(RSS)
    feed = parse_feed(str(local).encode())
    assert feed.items == () and feed.error


def test_external_entities_are_never_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<rss version="2.0"><channel><title>t&x;</title>'
        "<item><title>a&x;</title><description>&x;</description></item></channel></rss>"
    ).encode()
    assert "TOP-SECRET" not in json.dumps(to_json(parse_feed(xxe)))


def test_entity_expansion_bombs_are_refused_at_once() -> None:
    lol = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{n} "{f"&a{n - 1};" * 10}">' for n in range(1, 10)
    )
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE r [{lol}]><rss version="2.0"><channel>'
        "<title>&a9;</title><item><title>x</title></item></channel></rss>"
    ).encode()
    started = time.perf_counter()
    feed = parse_feed(bomb)
    assert time.perf_counter() - started < 0.5
    assert feed.error == "refused: the document declares entities that expand other entities"
    plain = b'<!DOCTYPE rss [<!ENTITY nbsp "&#160;">]><rss version="2.0"><channel><title>a&nbsp;b'
    assert parse_feed(plain + b"</title></channel></rss>").title == "a\xa0b"


def test_huge_titles_are_kept_whole_without_choking() -> None:
    title = "Council " * 250_000  # 2 MB
    rss = (
        f'<rss version="2.0"><channel><title>{title}</title><item><title>{title}</title>'
        "<guid>g</guid></item></channel></rss>"
    ).encode()
    started = time.perf_counter()
    feed = parse_feed(rss)
    assert time.perf_counter() - started < 5
    assert feed.error is None
    assert len(feed.items[0].title) == len(title) - 1  # the trailing space is trimmed
