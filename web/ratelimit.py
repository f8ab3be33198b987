"""A sliding-window rate limit kept in this process's memory.

Good enough for one web process (the embedded default): the counts are lost on restart and
are not shared between processes, so N web processes allow N times the limit.  A shared
store (a database table or Redis) is the step up when the web is scaled out.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

__all__ = ["Limit", "RateLimiter", "client_ip"]


@dataclass(frozen=True)
class Limit:
    """At most ``count`` events per ``seconds`` for one key."""

    count: int
    seconds: float


class RateLimiter:
    """Counts events per (bucket, key); ``hit`` records one only if every limit allows it."""

    def __init__(self, limits: dict[str, Limit], *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.limits = limits
        self.clock = clock
        self.max_keys = max_keys
        self._events: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _window(self, bucket: str, key: str, now: float) -> deque[float]:
        events = self._events.setdefault((bucket, key), deque())
        horizon = now - self.limits[bucket].seconds
        while events and events[0] <= horizon:
            events.popleft()
        return events

    def _prune(self, now: float) -> None:
        for (bucket, key) in list(self._events):
            if not self._window(bucket, key, now):
                del self._events[(bucket, key)]

    def _wait(self, windows: dict[str, deque[float]], now: float) -> float:
        wait = 0.0
        for bucket, events in windows.items():
            limit = self.limits[bucket]
            if len(events) >= limit.count:
                wait = max(wait, events[0] + limit.seconds - now)
        return wait

    def hit(self, **keys: str) -> float:
        """Record one event per ``bucket=key``; 0 if allowed, else seconds to wait."""
        now = self.clock()
        with self._lock:
            if len(self._events) > self.max_keys:
                self._prune(now)
            windows = {bucket: self._window(bucket, key, now) for bucket, key in keys.items()}
            wait = self._wait(windows, now)
            if wait > 0:
                return wait
            for events in windows.values():
                events.append(now)
            return 0.0

    def check(self, **keys: str) -> float:
        """Like ``hit`` but records nothing: for limits on failures, asked before trying."""
        now = self.clock()
        with self._lock:  # only keys seen before: asking must not grow the table
            windows = {bucket: self._window(bucket, key, now) for bucket, key in keys.items()
                       if (bucket, key) in self._events}
            return self._wait(windows, now)


def client_ip(request: Request) -> str:
    """The address limits are counted by (behind a trusted proxy, the forwarded one:
    web/proxy.py has already rewritten the scope)."""
    return request.client.host if request.client else "unknown"
