"""Serving the API: uvicorn on a thread of its own, with its own event loop.

The live page is a Bokeh (Tornado) application, mounted in the Dask dashboard when the cluster is
in-process, so the API cannot share its server: it gets its own port, ``DEFAULT_PORT`` (8790, next
to the page's 8788), bound to 127.0.0.1 unless ``--api-address`` says otherwise. Port 0 takes any
free port. When the default port is taken (a second planner on the machine), a free one is used
and printed; a port that was asked for explicitly and is taken is an error.

The socket is bound here, before uvicorn starts, so the address (and a port 0's number) is known
at once and a busy port is an error in the caller's thread. uvicorn installs no signal handlers
off the main thread: Ctrl-C and SIGTERM stay ``planner run``'s.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import uvicorn

from planner.interfaces.api.app import API_PREFIX, create_app
from planner.interfaces.api.metrics import PlannerMetrics

if TYPE_CHECKING:
    from registry.storage.store import Store

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_PORT", "ApiServer", "parse_address", "start_api"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8790  # the page is on 8788, next to Dask's 8787
DEFAULT_ADDRESS = f"{DEFAULT_HOST}:{DEFAULT_PORT}"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` (localhost) or ``PORT``; ``ValueError`` if not."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:8790")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (a port from 0 to 65535)")
    return host or DEFAULT_HOST, int(port)


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is up (or failed to come up)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


@dataclass(slots=True)
class ApiServer:
    """A served API: its base URL (``http://HOST:PORT/api/v1``), its metrics, how to stop it."""

    url: str
    metrics: PlannerMetrics
    _stop: Callable[[], None] = field(repr=False)

    @property
    def root(self) -> str:
        """``http://HOST:PORT`` (``/metrics`` is there)."""
        return self.url.removesuffix(API_PREFIX)

    def close(self) -> None:
        self._stop()


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    if host in ("", "0.0.0.0"):
        host = DEFAULT_HOST  # bound everywhere: localhost is one of the addresses
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{API_PREFIX}"


def start_api(
    store: Store,
    *,
    token: str | None,
    metrics: PlannerMetrics | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    fallback: bool = True,
    say: Callable[[str], None] | None = None,
) -> ApiServer:
    """Serve the API over ``store`` on ``host:port`` and return once it answers.

    ``fallback``: if ``port`` is taken, take a free one (and ``say`` so); otherwise the
    ``OSError`` is raised."""
    try:
        sock = _bind(host, port)
    except OSError:
        if not fallback or port == 0:
            raise
        sock = _bind(host, 0)
        message = f"port {port} is busy; serving the HTTP API on port {sock.getsockname()[1]}"
        log.warning(message)
        if say is not None:
            say(message)
    metrics = metrics or PlannerMetrics()
    app = create_app(store, token=token, metrics=metrics)
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", log_level="warning"
    )
    server = _Server(config)
    failure: dict[str, BaseException] = {}

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the caller below, or logged if later
            failure["error"] = exc
            log.exception("the HTTP API server stopped")
        finally:
            server.ready.set()
            sock.close()

    thread = threading.Thread(target=run, name="planner-api", daemon=True)
    thread.start()
    server.ready.wait()
    if "error" in failure or not server.started:
        thread.join(timeout=5)
        raise RuntimeError(f"the HTTP API did not start: {failure.get('error')!r}")

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        with contextlib.suppress(OSError):
            sock.close()

    return ApiServer(url=_url(host, sock), metrics=metrics, _stop=stop)
