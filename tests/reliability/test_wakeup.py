"""The serve/worker signals survive a worker killed -9 while it uses them (the fault suite
found multiprocessing.Event wedged for good that way: workers/wakeup.py)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

from workers.wakeup import SharedFlag


def _clock_like(flag: SharedFlag) -> None:
    while True:  # what the worker's clock does, as fast as it can
        flag.clear()
        flag.wait(0.001)


def test_a_flag_still_works_after_users_are_killed_mid_call() -> None:
    ctx = multiprocessing.get_context("spawn")
    flag = SharedFlag(ctx)
    for _ in range(5):
        child = ctx.Process(target=_clock_like, args=(flag,))
        child.start()
        time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join()
        start = time.monotonic()
        flag.set()
        assert flag.is_set() and flag.wait(1.0)
        flag.clear()
        assert not flag.wait(0.02)
        assert time.monotonic() - start < 1.0


def test_wait_returns_as_soon_as_another_thread_sets_it() -> None:
    flag = SharedFlag(multiprocessing.get_context("spawn"))
    threading.Timer(0.05, flag.set).start()
    start = time.monotonic()
    assert flag.wait(5.0)
    assert time.monotonic() - start < 1.0
