"""Run the web application with uvicorn on the asyncio loop that is already running.

``citymail serve`` runs the SMTP gateway and the web side by side in one loop:

    server, task = await serve_web(create_app(settings, engine), host, port)
    ...
    await stop_web(server, task)

The listening socket is bound before this returns, so a port in use fails at once with a
message that says what to change.  uvicorn does not take over SIGINT/SIGTERM here: the
caller owns the signals and stops the server with ``stop_web``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from mailer.errors import CitymailError

__all__ = ["bind", "serve_web", "stop_web"]

log = logging.getLogger(__name__)
STARTUP_TIMEOUT = 10.0


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; CitymailError with the fix if the address is unusable."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise CitymailError(
            f"the web server cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "set CITYMAIL_WEB_HOST / CITYMAIL_WEB_PORT to a free address") from None


async def serve_web(app: ASGIApp, host: str, port: int, *, proxies: str = "",
                    ) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Start serving ``app`` on ``host:port`` (0: any free port); returns once listening.

    ``proxies``: addresses whose X-Forwarded-For/-Proto uvicorn believes; none by default,
    because ``web.proxy.ProxyHeaders`` (``CITYMAIL_TRUSTED_PROXIES``) does it in the app.
    The bound port is ``server.servers[0].sockets[0].getsockname()[1]``.
    """
    sock = bind(host, port)
    config = uvicorn.Config(
        app, lifespan="off", log_config=None, access_log=False, server_header=False,
        proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None, ws="none",
        timeout_graceful_shutdown=5)
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"citymail-web-{port}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while not server.started:
        if task.done():
            sock.close()
            task.result()  # raises what stopped it
            raise CitymailError("the web server stopped while starting")
        if loop.time() > deadline:
            task.cancel()
            sock.close()
            raise CitymailError(f"the web server did not start within {STARTUP_TIMEOUT:.0f} s")
        await asyncio.sleep(0.005)
    return server, task


async def stop_web(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Stop accepting, let requests in progress finish (5 s at most), and wait.

    Also safe after the server failed on its own: the failure is logged, not raised, so
    that the caller goes on to stop its other servers.
    """
    server.should_exit = True
    try:
        await task
    except Exception:
        log.exception("the web server failed")
