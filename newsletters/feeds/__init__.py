"""RSS/Atom feeds for the newsletters: fetch, parse, sanitise.

Public surface::

    fetch_feed(url, *, etag, last_modified, timeout, max_bytes, client) -> FetchResult
    load_source(file_or_url, *, timeout, max_bytes, client)            -> FetchResult
    next_poll_after(failures, *, base, cap)                            -> timedelta
    parse_feed(data, *, url, content_type)                             -> ParsedFeed
    to_json(ParsedFeed)                                                -> dict (DESIGN.md shape)

Nothing here raises for bad input or a bad network: each result carries its own error text
(`FetchResult.error`, `ParsedFeed.error`), one line, ready to show a user or log.
"""

from newsletters.feeds.fetch import FetchResult, fetch_feed, load_source, next_poll_after
from newsletters.feeds.parse import FeedItem, ParsedFeed, parse_feed, to_json

__all__ = [
    "FeedItem",
    "FetchResult",
    "ParsedFeed",
    "fetch_feed",
    "load_source",
    "next_poll_after",
    "parse_feed",
    "to_json",
]
