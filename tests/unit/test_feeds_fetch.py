"""fetch_feed against a real HTTP server on 127.0.0.1; load_source; polling back-off."""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from newsletters.feeds import fetch_feed, load_source, next_poll_after, parse_feed

FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>League News</title><link>/news/</link>
<item><title>Housing bill</title><link>/news/housing</link><guid>n-1</guid></item>
</channel></rss>"""
ETAG = '"v1"'
LAST_MODIFIED = "Tue, 07 May 2024 16:30:00 GMT"
LIMIT = 10_000


@dataclass
class Server:
    url: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


class Handler(http.server.BaseHTTPRequestHandler):
    server_state: Server

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        state = self.server_state
        state.requests.append((self.path, dict(self.headers.items())))
        route = ROUTES.get(self.path.split("?")[0])
        if route is None and self.path.startswith("/hop/"):
            route = hop
        (route or not_found)(self, state)


def send(handler: Handler, status: int, body: bytes, **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def feed(handler: Handler, state: Server) -> None:
    if (
        handler.headers.get("If-None-Match") == ETAG
        or handler.headers.get("If-Modified-Since") == LAST_MODIFIED
    ):
        handler.send_response(304)
        handler.send_header("ETag", ETAG)
        handler.end_headers()
        return
    validators = {"ETag": ETAG, "Last_Modified": LAST_MODIFIED}
    send(handler, 200, FEED, Content_Type="application/rss+xml", **validators)


def big_declared(handler: Handler, state: Server) -> None:
    send(handler, 200, b"<rss>" + b" " * (LIMIT * 3), Content_Type="application/rss+xml")


def big_streamed(handler: Handler, state: Server) -> None:
    """No Content-Length: the body just keeps coming until the client hangs up."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/rss+xml")
    handler.send_header("Connection", "close")
    handler.end_headers()
    try:
        for _ in range(10_000):  # up to 40 MB, far beyond what the client may read
            handler.wfile.write(b"<!-- padding -->" * 256)
    except OSError:
        pass  # the client stopped reading, as it should


def gzip_bomb(handler: Handler, state: Server) -> None:
    body = gzip.compress(b" " * (LIMIT * 100))
    send(handler, 200, body, Content_Type="application/rss+xml", Content_Encoding="gzip")


def server_error(handler: Handler, state: Server) -> None:
    send(handler, 500, b"oops", Content_Type="text/plain")


def silent(handler: Handler, state: Server) -> None:
    state.release.wait(10)  # never answers while the test waits


def hop(handler: Handler, state: Server) -> None:
    left = int(handler.path.rsplit("/", 1)[1])
    target = "/feed.xml" if left == 0 else f"/hop/{left - 1}"
    send(handler, 302, b"", Location=target)


def not_found(handler: Handler, state: Server) -> None:
    send(handler, 404, b"no such feed")


ROUTES = {
    "/feed.xml": feed,
    "/big.xml": big_declared,
    "/stream.xml": big_streamed,
    "/bomb.xml": gzip_bomb,
    "/error.xml": server_error,
    "/silent.xml": silent,
}


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state = Server(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    Handler.server_state = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_first_fetch_gets_the_feed_and_its_validators(server: Server) -> None:
    result = fetch_feed(server.url + "/feed.xml")
    assert (result.status, result.http_status, result.error) == ("ok", 200, None)
    assert result.body == FEED
    assert (result.etag, result.last_modified) == (ETAG, LAST_MODIFIED)
    assert result.url == server.url + "/feed.xml"
    assert result.content_type == "application/rss+xml"
    parsed = parse_feed(result.body, url=result.url, content_type=result.content_type)
    assert parsed.items[0].link == server.url + "/news/housing"


def test_second_fetch_with_validators_is_not_modified(server: Server) -> None:
    first = fetch_feed(server.url + "/feed.xml")
    again = fetch_feed(server.url + "/feed.xml", etag=first.etag, last_modified=first.last_modified)
    assert (again.status, again.http_status, again.body, again.error) == (
        "not_modified",
        304,
        None,
        None,
    )
    assert (again.etag, again.last_modified) == (ETAG, LAST_MODIFIED)  # keep them for next time
    sent = server.requests[-1][1]
    assert sent["If-None-Match"] == ETAG and sent["If-Modified-Since"] == LAST_MODIFIED


def test_last_modified_alone_is_enough_for_a_304(server: Server) -> None:
    result = fetch_feed(server.url + "/feed.xml", last_modified=LAST_MODIFIED)
    assert result.status == "not_modified"


def test_a_body_declared_too_big_is_refused(server: Server) -> None:
    result = fetch_feed(server.url + "/big.xml", max_bytes=LIMIT)
    assert (result.status, result.body) == ("error", None)
    assert result.error == f"feed larger than {LIMIT} bytes"


def test_an_endless_body_is_cut_off_at_the_limit(server: Server) -> None:
    started = time.perf_counter()
    result = fetch_feed(server.url + "/stream.xml", max_bytes=LIMIT)
    assert result.error == f"feed larger than {LIMIT} bytes"
    assert time.perf_counter() - started < 3


def test_the_limit_counts_decompressed_bytes(server: Server) -> None:
    result = fetch_feed(server.url + "/bomb.xml", max_bytes=LIMIT)
    assert result.error == f"feed larger than {LIMIT} bytes"


def test_a_server_error_is_reported_with_its_status(server: Server) -> None:
    result = fetch_feed(server.url + "/error.xml", etag=ETAG)
    assert (result.status, result.http_status, result.body) == ("error", 500, None)
    assert result.error is not None and result.error.startswith("HTTP 500 Internal Server Error")
    assert result.etag == ETAG  # validators passed in are handed back untouched


def test_a_silent_server_times_out(server: Server) -> None:
    started = time.perf_counter()
    result = fetch_feed(server.url + "/silent.xml", timeout=0.5)
    elapsed = time.perf_counter() - started
    assert result.status == "error"
    assert result.error == f"timed out after 0.5 s fetching {server.url}/silent.xml"
    assert 0.4 < elapsed < 2.5


def test_redirects_are_followed_up_to_five(server: Server) -> None:
    result = fetch_feed(server.url + "/hop/4")  # 5 redirects
    assert (result.status, result.url) == ("ok", server.url + "/feed.xml")
    too_many = fetch_feed(server.url + "/hop/5")  # 6 redirects
    assert too_many.status == "error"
    assert too_many.error is not None and "too many redirects" in too_many.error


def test_a_caller_supplied_client_is_used(server: Server) -> None:
    with httpx.Client() as client:
        result = fetch_feed(server.url + "/feed.xml", client=client)
        assert result.status == "ok"
        assert not client.is_closed


def test_a_refused_connection_is_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = fetch_feed(f"http://127.0.0.1:{port}/feed.xml", timeout=2)
    assert result.status == "error"
    assert result.error is not None and result.error.startswith(
        f"could not connect to 127.0.0.1:{port}"
    )


@pytest.mark.parametrize("url", ["ftp://example.org/feed", "example.org/feed", ""])
def test_urls_other_than_http_are_refused(url: str) -> None:
    result = fetch_feed(url)
    assert result.status == "error" and result.error and "expected http" in result.error


def test_corrupt_stored_validators_are_not_sent(server: Server) -> None:
    result = fetch_feed(server.url + "/feed.xml", etag='"\u00e9t\u00e9"\r\nX-Evil: 1')
    assert (result.status, result.body) == ("ok", FEED)
    sent = server.requests[-1][1]
    assert "If-None-Match" not in sent and "X-Evil" not in sent


def test_a_malformed_url_is_reported() -> None:
    result = fetch_feed("http://[::1/feed.xml")
    assert result.status == "error"
    assert result.error is not None and result.error.startswith("invalid URL")


# --- load_source ----------------------------------------------------------------------------


def test_load_source_reads_paths_and_file_urls(tmp_path: Path) -> None:
    path = tmp_path / "league news.xml"
    path.write_bytes(FEED)
    for source in (str(path), path, path.as_uri()):
        result = load_source(source)
        assert (result.status, result.body, result.url, result.http_status) == (
            "ok",
            FEED,
            None,
            None,
        )


def test_load_source_fetches_http_urls(server: Server) -> None:
    result = load_source(server.url + "/feed.xml")
    assert (result.status, result.http_status, result.body) == ("ok", 200, FEED)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("missing.xml", "no such file: "),
        (".", "is a directory, not a feed file"),
        ("file://elsewhere.example/feed.xml", "names another host"),
        ("gopher://example.org/feed", "unsupported URL"),
    ],
)
def test_load_source_reports_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, error: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = load_source(source)
    assert result.status == "error" and result.body is None
    assert result.error is not None and error in result.error


def test_load_source_refuses_oversized_files(tmp_path: Path) -> None:
    path = tmp_path / "huge.xml"
    path.write_bytes(b" " * (LIMIT + 1))
    assert load_source(path, max_bytes=LIMIT).error == f"feed larger than {LIMIT} bytes"
    assert load_source(path, max_bytes=LIMIT + 1).status == "ok"


# --- next_poll_after -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "minutes"),
    [(-1, 15), (0, 15), (1, 30), (2, 60), (3, 120), (4, 240), (5, 360), (6, 360), (10_000, 360)],
)
def test_polls_back_off_exponentially_up_to_the_cap(failures: int, minutes: int) -> None:
    delay = next_poll_after(failures, base=timedelta(minutes=15), cap=timedelta(hours=6))
    assert delay == timedelta(minutes=minutes)
