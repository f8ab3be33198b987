"""A cross-process event that a ``kill -9`` cannot wedge.

``multiprocessing.Event`` guards its flag with a semaphore.  A process killed while it
holds that semaphore (inside ``set``, ``clear``, ``is_set`` or on the way in or out of
``wait``) never releases it, and every other process that touches the event blocks for
good: found by the reliability suite, where a worker killed during the clock's
``wake.clear()`` froze its replacement and the gateway's inbound writer (``wake.set()``).

Here the flag is one byte of shared memory that nobody locks (a byte store is atomic) and
``wait`` polls it: a waiter notices ``set`` within ``POLL`` seconds.
"""

from __future__ import annotations

import time
from multiprocessing.context import BaseContext

__all__ = ["POLL", "SharedFlag"]

POLL = 0.005  # seconds between looks at the flag while waiting


class SharedFlag:
    """``set``/``clear``/``is_set``/``wait`` like ``multiprocessing.Event``, without a lock.

    Pass it to child processes as an argument when they are created (it lives in shared
    memory from ``ctx.RawValue``).
    """

    def __init__(self, ctx: BaseContext) -> None:
        self._flag = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._flag.value = 1

    def clear(self) -> None:
        self._flag.value = 0

    def is_set(self) -> bool:
        return bool(self._flag.value)

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag.value:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._flag.value:
            left = POLL if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL, left))
        return True
