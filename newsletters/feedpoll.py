"""The workers' clock polls the newsletters' feeds in a thread of their own.

Fetches are network I/O (each bounded by the fetcher's timeout, 10 s by default), so the
clock never runs them itself: ``FeedPoller.maybe_start`` is a cheap call the clock makes on
every tick; at most every ``check`` seconds, and only when the previous poll has finished,
it starts one thread that runs ``feedstore.poll_feeds``.  ``poll_feeds`` claims the due
feeds in the database, so several worker processes never fetch one feed twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from newsletters.feedstore import POLL_CAP, poll_feeds

__all__ = ["FeedPoller"]

log = logging.getLogger(__name__)

CHECK_EVERY = 60.0  # seconds between looks for due feeds (one indexed read when none is)


class FeedPoller:
    """Start ``poll_feeds`` in a background thread, one poll at a time.

    ``every`` is each feed's polling interval (``CITYMAIL_FEED_POLL_MINUTES``); a zero
    interval turns the clock's polling off (``citymail newsletters feeds poll`` still works).
    """

    def __init__(self, engine: Engine, *, every: dt.timedelta, check: float = CHECK_EVERY,
                 poll: Callable[..., list[Any]] = poll_feeds,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.every = every
        self.check = check
        self.poll = poll
        self.monotonic = monotonic
        self._last: float | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def maybe_start(self) -> bool:
        """Start a poll if one is due and none is running; True when one was started."""
        if self.every <= dt.timedelta(0) or self.running:
            return False
        now = self.monotonic()
        if self._last is not None and now - self._last < self.check:
            return False
        self._last = now
        self._thread = threading.Thread(target=self._run, name="citymail-feed-poll",
                                        daemon=True)
        self._thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            outcomes = self.poll(self.engine, base=self.every, cap=max(POLL_CAP, self.every))
        except Exception:  # a thread boundary: log, and the next check tries again
            log.exception("feed poll failed; trying again in %.0f s", self.check)
            return
        for o in outcomes:
            log.info("feed %d %s: %s, %d new item(s)%s", o.feed_id, o.url, o.status,
                     o.new_items, f" ({o.error})" if o.error else "")
