"""``citymail worker``: N worker processes against a shared broker, until stopped."""

from __future__ import annotations

import multiprocessing
import signal

from mailer.settings import Settings
from workers.process import run_worker
from workers.wakeup import SharedFlag

__all__ = ["run"]


def run(settings: Settings, *, processes: int, threads: int) -> None:
    if processes == 1:
        run_worker(settings, threads=threads)
        return
    ctx = multiprocessing.get_context("spawn")
    stop = SharedFlag(ctx)  # survives a child's kill -9 (workers/wakeup.py)
    children = [ctx.Process(target=run_worker, args=(settings,),
                            kwargs={"threads": threads, "stop": stop},
                            name=f"citymail-worker-{i}") for i in range(processes)]
    for child in children:
        child.start()

    def _stop(*_args: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for child in children:
        child.join()
