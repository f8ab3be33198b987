"""A worker process: Dramatiq worker threads plus the clock, until told to stop."""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import signal
import threading

from dramatiq import Worker

from mailer.db import WriteGate, make_engine, yield_writes_to
from mailer.logfmt import configure_logging
from mailer.settings import Settings
from workers.broker import make_broker
from workers.runtime import Clock, build_runtime

__all__ = ["run_worker"]

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, threads: int, wake=None, stop=None, nice: int = 0,
               gate: WriteGate | None = None, log_level: int = logging.INFO) -> None:
    """Run until SIGTERM/SIGINT or until ``stop`` (a multiprocessing Event) is set.

    ``nice`` lowers this process's CPU priority: beside the gateway on one machine, a
    burst of deliveries must not slow the 250s (the backlog waits safely in the database).
    ``gate`` (open while the gateway is idle) gives the gateway's commits the write lock first.
    """
    if nice:
        os.nice(nice)
    configure_logging(settings.log_format, level=log_level)  # CITYMAIL_LOG_FORMAT
    # Only the gateway's commits back a 250 and need FULL; a worker commit lost to a power
    # cut is redone from the rows before it (at worst a chunk is sent twice).
    engine = make_engine(settings, synchronous="NORMAL")
    if gate is not None:
        yield_writes_to(engine, gate)
    broker = make_broker(settings)
    rt = build_runtime(settings, engine, broker, threads=threads)
    rt.beat()
    rt.processor.warm_up()
    worker = Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    lease = dt.timedelta(seconds=settings.worker_lease)
    # A broker message not taken within the lease is presumed lost (a broker restart):
    # the same 30 s by default, and short leases make tests of that path short too.
    clock = Clock(rt, wake=wake, embedded=settings.embedded_broker, lease=lease, late=lease,
                  tick=min(1.0, settings.worker_lease / 3))
    clock.start()
    done = threading.Event()

    def _stop(*_args: object) -> None:
        done.set()
        if wake is not None:
            wake.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("worker %s running %d threads on %s", rt.worker_id, threads,
             settings.broker_url)
    parent = multiprocessing.parent_process()
    try:
        while not done.is_set():
            if stop is not None and stop.wait(0.2):
                break
            if stop is None:
                done.wait(0.5)
            if parent is not None and not parent.is_alive():
                log.error("citymail serve went away; this worker stops too")
                break
    finally:
        clock.stop()
        clock.join(5)
        worker.stop(timeout=30_000)  # lets in-flight chunks finish and record results
        broker.close()
        try:
            rt.retire()
        except Exception:
            log.exception("could not retire worker %s", rt.worker_id)
        engine.dispose()
        log.info("worker %s stopped", rt.worker_id)
