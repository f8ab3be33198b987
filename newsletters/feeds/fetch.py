"""Get feed bytes over HTTP (conditional GET, bounded) or from a file, never raising.

`fetch_feed` is the HTTP adapter: httpx errors (time-outs, refused connections, too many
redirects, bad URLs) are translated here into `FetchResult(status="error", error=...)`, one
line of text. `load_source` adds local files for the command line. `next_poll_after` is the
pure back-off rule for polling a feed that keeps failing.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit
from urllib.request import url2pathname

if TYPE_CHECKING:
    import httpx

__all__ = ["MAX_REDIRECTS", "FetchResult", "fetch_feed", "load_source", "next_poll_after"]

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
USER_AGENT = "citymail-feeds/0.1 (+https://github.com/citymail)"
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
_HEADER_VALUE = re.compile(r"[\x20-\x7e]+")  # printable ASCII: nothing that could split a header
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")

Status = Literal["ok", "not_modified", "error"]


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a fetch gave: a body (ok), nothing new (not_modified), or why not (error).

    `etag` and `last_modified` are the validators to send next time: the server's new ones
    after ok or not_modified, the ones passed in after an error. `url` is the final URL after
    redirects (None for a file); `content_type` the response's Content-Type header.
    """

    status: Status
    body: bytes | None
    etag: str | None
    last_modified: str | None
    error: str | None
    http_status: int | None
    url: str | None = None
    content_type: str | None = None


def fetch_feed(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    timeout: float = 10.0,
    max_bytes: int = 5_000_000,
    client: httpx.Client | None = None,
) -> FetchResult:
    """GET *url* conditionally, following up to 5 redirects; problems come back as errors.

    *timeout* (seconds) bounds each network wait and the whole download. The body is read in
    chunks and abandoned as soon as it exceeds *max_bytes* (after content decoding, so a gzip
    bomb is stopped too). A *client* passed in is used as is (its own redirect limit applies).
    """

    def failed(error: str, http_status: int | None = None) -> FetchResult:
        logger.info("feed fetch failed url=%s: %s", url, error)
        return FetchResult("error", None, etag, last_modified, error, http_status, url)

    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        return failed(f"unsupported URL {url!r}: expected http:// or https://")
    headers = {"User-Agent": USER_AGENT, "Accept": _ACCEPT}
    for name, value in (("If-None-Match", etag), ("If-Modified-Since", last_modified)):
        if value and _HEADER_VALUE.fullmatch(value):
            headers[name] = value
        elif value:  # a corrupt stored validator must not block every later poll
            logger.info("feed fetch url=%s: unusable %s %r not sent", url, name, value)
    import httpx  # on first use: ~15 MB that a worker delivering mail never needs

    try:
        if client is not None:
            return _get(client, url, headers, timeout=timeout, max_bytes=max_bytes, failed=failed)
        with httpx.Client(max_redirects=MAX_REDIRECTS, timeout=timeout) as own:
            return _get(own, url, headers, timeout=timeout, max_bytes=max_bytes, failed=failed)
    except httpx.TimeoutException:
        return failed(f"timed out after {timeout:g} s fetching {url}")
    except httpx.TooManyRedirects:
        return failed(f"too many redirects (more than {MAX_REDIRECTS}) fetching {url}")
    except httpx.ConnectError as exc:
        return failed(f"could not connect to {_host(url)}: {exc or type(exc).__name__}")
    except httpx.InvalidURL as exc:
        return failed(f"invalid URL {url!r}: {exc}")
    except httpx.HTTPError as exc:
        return failed(f"{type(exc).__name__} fetching {url}: {exc}")
    except Exception as exc:  # the contract: a fetch never raises (bad header values, ...)
        logger.warning("unexpected fetch failure url=%s", url, exc_info=True)
        return failed(f"could not fetch {url}: {exc!r}")


def _get(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    *,
    timeout: float,
    max_bytes: int,
    failed: Callable[..., FetchResult],
) -> FetchResult:
    deadline = time.monotonic() + timeout
    with client.stream(
        "GET", url, headers=headers, timeout=timeout, follow_redirects=True
    ) as response:
        status = response.status_code
        final_url = str(response.url)
        if status == 304:
            return FetchResult(
                "not_modified",
                None,
                response.headers.get("etag") or headers.get("If-None-Match"),
                response.headers.get("last-modified") or headers.get("If-Modified-Since"),
                None,
                status,
                final_url,
            )
        if not 200 <= status < 300:
            reason = f"HTTP {status} {response.reason_phrase}".strip()
            return failed(f"{reason} from {final_url}", status)
        too_big = f"feed larger than {max_bytes} bytes"
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            return failed(too_big, status)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                return failed(too_big, status)
            if time.monotonic() > deadline:
                return failed(f"timed out after {timeout:g} s fetching {url}", status)
            chunks.append(chunk)
        return FetchResult(
            "ok",
            b"".join(chunks),
            response.headers.get("etag"),
            response.headers.get("last-modified"),
            None,
            status,
            final_url,
            response.headers.get("content-type"),
        )


def load_source(
    file_or_url: str | os.PathLike[str],
    *,
    timeout: float = 10.0,
    max_bytes: int = 5_000_000,
    client: httpx.Client | None = None,
) -> FetchResult:
    """Read a feed from an http(s) URL, a ``file:`` URL or a filesystem path.

    Files give ``http_status=None`` and ``url=None`` (relative links in them are resolved
    against the feed's own link). Like `fetch_feed`, problems come back as errors.
    """
    text = os.fspath(file_or_url)
    lowered = text.lower()
    if lowered.startswith(("http://", "https://")):
        return fetch_feed(text, timeout=timeout, max_bytes=max_bytes, client=client)
    if lowered.startswith("file:"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            return _file_error(f"file URL {text!r} names another host; only local files")
        return _read_file(Path(url2pathname(parts.path)), max_bytes=max_bytes)
    if _URL_SCHEME.match(text):
        return _file_error(f"unsupported URL {text!r}: expected http(s)://, file: or a path")
    return _read_file(Path(text), max_bytes=max_bytes)


def _read_file(path: Path, *, max_bytes: int) -> FetchResult:
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        return _file_error(f"no such file: {path}")
    except IsADirectoryError:
        return _file_error(f"{path} is a directory, not a feed file")
    except PermissionError:
        return _file_error(f"permission denied reading {path}")
    except (OSError, ValueError) as exc:
        return _file_error(f"could not read {path}: {getattr(exc, 'strerror', None) or exc}")
    if len(data) > max_bytes:
        return _file_error(f"feed larger than {max_bytes} bytes")
    return FetchResult("ok", data, None, None, None, None)


def _file_error(error: str) -> FetchResult:
    return FetchResult("error", None, None, None, error, None)


def _host(url: str) -> str:
    try:
        return urlsplit(url).netloc or url
    except ValueError:
        return url


def next_poll_after(failures: int, *, base: timedelta, cap: timedelta) -> timedelta:
    """Delay before the next poll: *base* after a success, doubled per consecutive failure.

    ``failures`` counts consecutive failed polls (0 or less means the last poll worked); the
    delay is ``base * 2**failures``, never more than *cap*.
    """
    if failures <= 0:
        return min(base, cap)
    if failures >= 63:
        return cap
    try:
        delay: timedelta = base * (2**failures)
    except OverflowError:
        return cap
    return min(delay, cap)
