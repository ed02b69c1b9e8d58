"""Serving the live page: mounted in the Dask dashboard, or on a port of its own.

With an in-process cluster the scheduler's HTTP server is already a Bokeh server (Dask's
dashboard), so the page is added to it exactly as Dask adds its own pages
(``distributed.dashboard.scheduler.connect``): a Bokeh Tornado application for ``/planner``,
registered with the scheduler's ``RoutingApplication``, initialised and started on the scheduler's
event loop, and listed in the dashboard's navigation bar. With a remote scheduler (or an in-process
one without a dashboard) the planner serves the page itself: a Bokeh server on a thread of its
own, bound to 127.0.0.1 unless told otherwise.

Updates are pushed, not polled. ``PageHub`` is a listener of the driver: after each planner step it
only sets an event (the planner loop must never wait for the page). Its own thread then takes one
snapshot — at most every ``min_interval`` seconds, and only while someone watches — and hands it
to each open session with ``Document.add_next_tick_callback``, the one thread-safe way into a Bokeh
document. A session that has not yet applied its previous snapshot just gets the newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.document import Document
from bokeh.server.server import BaseServer
from bokeh.server.tornado import BokehTornado
from bokeh.server.util import bind_sockets
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

from planner.interfaces.page.columns import Snapshot
from planner.interfaces.page.page import PlannerPage

if TYPE_CHECKING:
    from planner.core.events import Step
    from planner.live.cluster import Connection
    from planner.live.loop import LiveDriver

__all__ = [
    "PAGE_PATH",
    "Dashboard",
    "PageHub",
    "Watched",
    "serve",
    "serve_alone",
    "start_dashboard",
]

log = logging.getLogger(__name__)

PAGE_PATH = "/planner"
DEFAULT_PORT = 8788  # next to Dask's 8787


class _Session:
    """One open page: the latest snapshot not yet applied, and its document."""

    def __init__(self, doc: Document, page: PlannerPage) -> None:
        self.doc = doc
        self.page = page
        self._lock = threading.Lock()
        self._next: Snapshot | None = None

    def push(self, snap: Snapshot) -> bool:
        """From any thread; False when the document is gone."""
        with self._lock:
            scheduled = self._next is not None
            self._next = snap
        if scheduled:
            return True
        try:
            self.doc.add_next_tick_callback(self._apply)
        except RuntimeError:  # the session was destroyed meanwhile
            return False
        return True

    def _apply(self) -> None:
        with self._lock:
            snap, self._next = self._next, None
        if snap is not None:
            self.page.update(snap)


class Watched(Protocol):
    """What the page reads of a planner: the live driver, or ``planner serve``'s ``StoreWatch``
    (``planner.interfaces.page.watch``). Listeners are called as ``listener(watched, step)``."""

    listeners: list[Any]

    def snapshot(self, *, limit: int = 500) -> dict[str, Any]: ...


class PageHub:
    """Fans planner events out to the open pages, throttled to one snapshot per ``min_interval``."""

    def __init__(self, driver: Watched, *, min_interval: float = 0.25) -> None:
        self.driver = driver
        self.min_interval = min_interval
        self._sessions: set[_Session] = set()
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="planner-page", daemon=True)

    def start(self) -> PageHub:
        self.driver.listeners.append(self.on_step)
        self._thread.start()
        return self

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.driver.listeners.remove(self.on_step)
        self._closed.set()
        self._dirty.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    def on_step(self, driver: LiveDriver | Watched, step: Step | None) -> None:
        """The driver's listener, on the planner's thread: mark dirty, nothing more."""
        self._dirty.set()

    def refresh(self) -> None:
        """Ask for a new snapshot for every open page (any thread)."""
        self._dirty.set()

    def build(self, doc: Document, *, title: str = "Planner") -> PlannerPage:
        """Lay out a page in ``doc`` (a new session, on the server's loop) and subscribe it."""
        page = PlannerPage(doc, title=title)
        session = _Session(doc, page)

        def attach() -> None:  # on the loop once the session exists: safe to push to
            with self._lock:
                self._sessions.add(session)
            self._dirty.set()

        def detach(_context: Any) -> None:
            with self._lock:
                self._sessions.discard(session)

        doc.add_next_tick_callback(attach)
        doc.on_session_destroyed(detach)
        return page

    def _loop(self) -> None:
        while True:
            self._dirty.wait()
            if self._closed.is_set():
                return
            self._dirty.clear()
            with self._lock:
                sessions = list(self._sessions)
            if sessions:
                try:
                    snap = self.driver.snapshot()
                except Exception:  # a page must never take the planner down
                    log.exception("planner page: snapshot failed")
                else:
                    gone = [s for s in sessions if not s.push(snap)]
                    if gone:
                        with self._lock:
                            self._sessions.difference_update(gone)
            if self._closed.wait(self.min_interval):  # the throttle
                return


# -- serving --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Dashboard:
    """A served page: its URL, whether it lives in the Dask dashboard, and how to stop it."""

    url: str
    mounted: bool
    hub: PageHub
    _stop: Callable[[], None] = field(repr=False)

    def close(self) -> None:
        self.hub.close()
        self._stop()


def start_dashboard(
    driver: LiveDriver,
    connection: Connection,
    *,
    port: int = DEFAULT_PORT,
    address: str = "127.0.0.1",
) -> str:
    """Serve the live page for ``driver`` and return its URL (for ``planner run`` to print).

    ``port`` and ``address`` only matter when the page cannot be mounted in the Dask dashboard."""
    return serve(driver, connection, port=port, address=address).url


def serve(
    driver: LiveDriver,
    connection: Connection,
    *,
    port: int = DEFAULT_PORT,
    address: str = "127.0.0.1",
    min_interval: float = 0.25,
) -> Dashboard:
    hub = PageHub(driver, min_interval=min_interval).start()
    try:
        scheduler = _local_scheduler(connection)
        if scheduler is not None and connection.dashboard:
            url, stop = _mount(scheduler, hub, connection.dashboard)
            return Dashboard(url=url, mounted=True, hub=hub, _stop=stop)
        url, stop = _serve_alone(hub, address=address, port=port)
        return Dashboard(url=url, mounted=False, hub=hub, _stop=stop)
    except BaseException:
        hub.close()
        raise


def serve_alone(
    watched: Watched,
    *,
    port: int = DEFAULT_PORT,
    address: str = "127.0.0.1",
    min_interval: float = 0.25,
) -> Dashboard:
    """Serve the page on a port of its own, for a planner without a cluster (``planner serve``)."""
    hub = PageHub(watched, min_interval=min_interval).start()
    try:
        url, stop = _serve_alone(hub, address=address, port=port)
    except BaseException:
        hub.close()
        raise
    return Dashboard(url=url, mounted=False, hub=hub, _stop=stop)


def _local_scheduler(connection: Connection) -> Any | None:
    """The in-process ``Scheduler`` object, when there is one and it serves a dashboard."""
    if connection.remote:
        return None
    scheduler = getattr(getattr(connection.client, "cluster", None), "scheduler", None)
    if getattr(scheduler, "http_application", None) is None:
        return None
    return scheduler


def _mount(scheduler: Any, hub: PageHub, dashboard_link: str) -> tuple[str, Callable[[], None]]:
    """Add ``/planner`` to the scheduler's own Bokeh server, as Dask adds its pages."""
    from distributed.dashboard.core import BokehApplication
    from distributed.utils import sync

    prefix = _dask_prefix(scheduler)
    template, variables = _dask_template(scheduler)

    def make_doc(_scheduler: Any, extra: dict[str, Any], doc: Document) -> None:
        hub.build(doc)
        if template is not None:
            doc.template = template
            doc.template_variables.update(extra)

    def mount() -> Any:
        app = BokehApplication(
            {PAGE_PATH: make_doc}, scheduler, prefix=prefix, template_variables=variables
        )
        scheduler.http_application.add_application(app)
        app.initialize(IOLoop.current())
        app.start()
        return app

    loop = scheduler.loop
    app = sync(loop, _as_coroutine(mount))
    pages = variables.get("pages")
    if isinstance(pages, list) and "planner" not in pages:
        pages.append("planner")  # the nav bar of Dask's own pages shares this list

    def stop() -> None:
        def unmount() -> None:
            with contextlib.suppress(ValueError):
                scheduler.http_application.applications.remove(app)
            if isinstance(pages, list) and "planner" in pages:
                pages.remove("planner")
            app.stop(wait=False)

        with contextlib.suppress(Exception):  # the cluster may already be closed
            sync(loop, _as_coroutine(unmount))

    return urljoin(_reachable(dashboard_link, scheduler), PAGE_PATH.strip("/")), stop


def _reachable(dashboard_link: str, scheduler: Any) -> str:
    """Dask builds the link from the scheduler's address; when the HTTP server is bound to one
    particular interface (127.0.0.1, say) only that one answers, so name it instead."""
    bound = getattr(scheduler.http_server, "address", None)
    parts = urlsplit(dashboard_link)
    if not bound or bound in ("0.0.0.0", "::") or parts.port is None:
        return dashboard_link
    host = f"[{bound}]" if ":" in bound else bound
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}"))


def _as_coroutine(fn: Callable[[], Any]) -> Callable[[], Any]:
    async def run() -> Any:
        return fn()

    return run


def _dask_prefix(scheduler: Any) -> str:
    """The URL prefix Dask's own pages use (``--dashboard-prefix``), usually ``/``."""
    for app in scheduler.http_application.applications:
        if isinstance(app, BokehTornado):
            return app._prefix or "/"
    return "/"


def _dask_template(scheduler: Any) -> tuple[Any | None, dict[str, Any]]:
    """Dask's page template and its variables, so the page wears the dashboard's navigation."""
    try:
        from distributed.dashboard.components.scheduler import env
        from distributed.dashboard.scheduler import template_variables

        return env.get_template("simple.html"), template_variables(scheduler)
    except Exception:  # Dask internals moved: a bare page still works
        log.debug("Dask dashboard template unavailable", exc_info=True)
        return None, {}


def _serve_alone(hub: PageHub, *, address: str, port: int) -> tuple[str, Callable[[], None]]:
    """A Bokeh server on its own thread and event loop."""
    try:
        sockets, bound = bind_sockets(address, port)
    except OSError:
        if port == 0:
            raise
        log.warning("port %d is busy; serving the planner page on a free port", port)
        sockets, bound = bind_sockets(address, 0)
    host = "127.0.0.1" if address in ("", "0.0.0.0") else address
    origins = [f"{host}:{bound}", f"localhost:{bound}"]
    if address in ("", "0.0.0.0"):
        origins.append("*")  # bound everywhere on purpose: accept any host name

    def make_doc(doc: Document) -> None:
        hub.build(doc)

    started = threading.Event()
    state: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = IOLoop.current()
        try:
            app = BokehTornado(
                {PAGE_PATH: Application(FunctionHandler(make_doc))},
                extra_websocket_origins=origins,
                use_index=False,
            )
            http = HTTPServer(app)
            http.add_sockets(sockets)
            server = BaseServer(loop, app, http)
            server.start()
            state["server"] = server
        except BaseException as exc:
            state["error"] = exc
            for s in sockets:
                s.close()
            started.set()
            return
        state["loop"] = loop
        started.set()
        loop.start()
        loop.close(all_fds=True)

    thread = threading.Thread(target=run, name="planner-page-server", daemon=True)
    thread.start()
    started.wait()
    if "error" in state:
        raise state["error"]
    loop: IOLoop = state["loop"]
    server: BaseServer = state["server"]

    def stop() -> None:
        def shutdown() -> None:
            server.stop(wait=False)
            loop.stop()

        loop.add_callback(shutdown)
        thread.join(timeout=10)

    return f"http://{host}:{bound}{PAGE_PATH}", stop
