"""``citymail serve``: the gateway in this process, workers in child processes.

With the embedded broker, one child process runs the Dramatiq actors on an in-process
broker; the database is the hand-off and a wake-up event tells the child to look now.  So
the gateway and the workers use both cores and the workers never slow the gateway.  With
Redis or RabbitMQ the gateway enqueues ids itself and any number of ``citymail worker``
processes, here or on other machines, do the work.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import sys
from multiprocessing.context import SpawnProcess

from sqlalchemy import Engine, select

from mailer.addresses import AddressTable
from mailer.db import make_engine, reading
from mailer.errors import CitymailError
from mailer.gateway import GatewayHandler, InboundStore, start_gateway
from mailer.models import MailingList
from mailer.schema import is_current
from mailer.settings import Settings
from web.app import create_app
from web.server import serve_web, stop_web
from workers.broker import make_broker
from workers.process import run_worker
from workers.runtime import build_runtime
from workers.wakeup import SharedFlag

__all__ = ["serve"]

log = logging.getLogger("citymail.serve")
TABLE_REFRESH_SECONDS = 5.0
# Workers beside the gateway run at the lowest CPU priority so that 250s stay fast under load:
# a burst waits safely in the database and the workers catch up on idle CPU (measured with
# smtp-source, 20 sessions: gateway/bare ratio 0.33 at nice 5, 0.40 at nice 19).
WORKER_NICE = 19
# The event loop gives up the GIL on every socket write; with CPython's default 5 ms switch
# interval the inbound writer thread then keeps it for up to 5 ms while the loop waits
# (measured with smtp-source, 20 sessions: gateway/bare 0.36 at 5 ms, 0.41 at 0.5 ms).
GIL_SWITCH_SECONDS = 0.0005


def address_table(engine: Engine, settings: Settings) -> AddressTable:
    with reading(engine) as conn:
        rows = conn.execute(select(MailingList.name, MailingList.kind)).all()
    return AddressTable(settings.list_domain, rows)


class Workers:
    """Child worker processes, restarted if one dies."""

    def __init__(self, settings: Settings, *, processes: int, threads: int) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.settings = settings
        self.processes = processes
        self.threads = threads
        # SharedFlag, not ctx.Event(): a worker killed -9 while holding an Event's lock
        # froze the gateway and every later worker (see workers/wakeup.py).
        self.wake = SharedFlag(self.ctx)
        self.gateway_idle = SharedFlag(self.ctx)  # workers write first only while it is set
        self.gateway_idle.set()
        self.stop_event = SharedFlag(self.ctx)
        self.children: list[SpawnProcess] = []

    def _spawn(self, index: int) -> SpawnProcess:
        proc = self.ctx.Process(
            target=run_worker, name=f"citymail-worker-{index}", args=(self.settings,),
            kwargs={"threads": self.threads, "wake": self.wake, "stop": self.stop_event,
                    "nice": WORKER_NICE, "gate": self.gateway_idle},
            daemon=False)
        proc.start()
        return proc

    def start(self) -> None:
        self.children = [self._spawn(i) for i in range(self.processes)]

    def check(self) -> None:
        for i, proc in enumerate(self.children):
            if not proc.is_alive() and not self.stop_event.is_set():
                log.error("worker process %s exited with %s; starting a new one",
                          proc.name, proc.exitcode)
                self.children[i] = self._spawn(i)

    def stop(self, timeout: float = 40.0) -> None:
        self.stop_event.set()
        self.wake.set()
        for proc in self.children:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()


async def _serve(settings: Settings, engine: Engine, workers: Workers | None) -> None:
    loop = asyncio.get_running_loop()
    if settings.embedded_broker:
        assert workers is not None
        wake = workers.wake

        def on_stored(ids: list[int]) -> None:
            wake.set()

        idle = workers.gateway_idle

        def on_busy(busy: bool) -> None:
            idle.clear() if busy else idle.set()

        store = InboundStore(engine, on_stored=on_stored, enqueued=False, on_busy=on_busy)
    else:
        broker = make_broker(settings)
        rt = build_runtime(settings, engine, broker, threads=1)

        def on_stored(ids: list[int]) -> None:
            rt.send_inbound(ids)

        store = InboundStore(engine, on_stored=on_stored, enqueued=True)
    handler = GatewayHandler(address_table(engine, settings), store)
    # The web first: a busy web port fails before the gateway's writer thread starts.
    web, web_task = await serve_web(create_app(settings, engine), settings.web_host,
                                    settings.web_port)
    web_port = web.servers[0].sockets[0].getsockname()[1]
    print(f"citymail: web listening on {settings.web_host}:{web_port}; links in mail use "
          f"{settings.base_url}", flush=True)
    store.start()
    server = await start_gateway(handler, host=settings.smtp_host, port=settings.smtp_port,
                                 max_size=settings.max_message_size)
    port = server.sockets[0].getsockname()[1]
    print(f"citymail: gateway listening on {settings.smtp_host}:{port} for "
          f"{len(handler.table)} lists at {settings.list_domain}; relay {settings.relay_url}; "
          f"broker {settings.broker_url}", flush=True)
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), TABLE_REFRESH_SECONDS)
        except TimeoutError:
            try:
                handler.table = await asyncio.to_thread(address_table, engine, settings)
            except Exception:
                log.exception("could not refresh the address table; keeping the old one")
            if workers is not None:
                workers.check()
            if web_task.done():
                log.error("the web server stopped; stopping citymail")
                stopping.set()
    print("citymail: stopping (finishing stored work)", flush=True)
    await stop_web(web, web_task)
    server.close()
    await server.wait_closed()
    await store.stop()


def serve(settings: Settings, *, run_workers: bool = True, processes: int = 1,
          threads: int | None = None) -> None:
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per session
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    engine = make_engine(settings)
    if not is_current(engine):
        raise CitymailError("the database is not initialised or is out of date: "
                            "run `citymail init` first")
    if settings.embedded_broker and not run_workers:
        raise CitymailError("--no-workers needs a shared broker (CITYMAIL_BROKER_URL=redis://… "
                            "or amqp://…); the embedded broker lives inside citymail serve")
    workers = None
    if run_workers:
        workers = Workers(settings, processes=processes,
                          threads=threads or settings.worker_threads)
        workers.start()
    try:
        asyncio.run(_serve(settings, engine, workers))
    finally:
        if workers is not None:
            workers.stop()
        engine.dispose()
