"""The live page: snapshot → columns as plain functions, the hub's push and throttle with a fake
driver, and the real page in a real headless Chromium — mounted in the Dask dashboard of an
in-process cluster, and served on its own port as for a remote scheduler."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import pytest
from bokeh.document import Document
from bokeh.models.widgets import DataTable
from distributed import Client, LocalCluster

from planner.interfaces.page import PAGE_PATH, Dashboard, PageHub, PlannerPage, serve
from planner.interfaces.page.columns import (
    MAX_DAG_NODES,
    RUN_COLOURS,
    dag_layout,
    gantt_columns,
    queue_columns,
    running_columns,
    summary_html,
)
from planner.interfaces.page.history_columns import (
    RECENT_TEXT_MAX_CHARS,
    log_html,
    recent_columns,
)
from planner.live.cluster import Connection
from planner.live.dispatch import Dispatcher
from planner.live.loop import LiveDriver, utcnow
from registry.definitions.loader import load_files
from registry.storage.sqlstore import SqlStore
from tests import live_jobs
from tests.waiting import wait_for

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOKYO = ZoneInfo("Asia/Tokyo")


def snapshot(**overrides: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "at": NOW,
        "slots": 3,
        "in_flight": 2,
        "running": [
            {
                "process": "load",
                "run_id": "load-1",
                "attempt": 1,
                "status": "running",
                "started": NOW - timedelta(seconds=30),
                "retry_at": None,
            },
            {
                "process": "extract",
                "run_id": "extract-4",
                "attempt": 2,
                "status": "queued",
                "started": NOW - timedelta(seconds=5),
                "retry_at": None,
            },
        ],
        "queue": [
            {"process": "load", "reasons": [{"code": "max_active", "detail": "1 of 1 running"}]},
            {
                "process": "backfill",
                "reasons": [
                    {"code": "reserved", "detail": "slot kept for nightly at 2026-03-01T13:00:00"}
                ],
            },
            {"process": "report", "reasons": [{"code": "ancestors", "detail": "load (running)"}]},
        ],
        "recent": [
            {
                "process": "extract",
                "run_id": "extract-4",
                "attempt": 1,
                "status": "failed",
                "duration_s": 12.0,
                "at": NOW - timedelta(seconds=10),
                "error": "RuntimeError: boom",
                "params": {"table": "orders", "day": "2026-03-01"},
                "result": None,
            },
            {
                "process": "clean",
                "run_id": "clean-1",
                "attempt": 1,
                "status": "succeeded",
                "duration_s": 60.0,
                "at": NOW - timedelta(seconds=100),
                "error": None,
                "params": {},
                "result": {"rows": 42, "note": "x" * 5000},
            },
        ],
        "failures": [],
        "nodes": [
            {"process": "extract", "state": "running"},
            {"process": "load", "state": "running"},
            {"process": "report", "state": "waiting"},
        ],
        "edges": [("extract", "report"), ("load", "report")],
    }
    snap["failures"] = [r for r in snap["recent"] if r["status"] == "failed"]
    snap.update(overrides)
    return snap


# -- snapshot → columns ---------------------------------------------------------------------------


def test_summary_names_slots_in_use_and_free() -> None:
    text = summary_html(snapshot())
    assert "Slots: 2 in use, 1 free of 3" in text
    assert "<b>1</b> running" in text and "<b>1</b> queued on Dask" in text


def test_queue_names_whom_a_reserved_slot_is_kept_for() -> None:
    cols = queue_columns(snapshot())
    # load runs and is at max_active: it is not waiting, so it is not in the queue
    assert cols["process"] == ["backfill", "report"]
    assert cols["codes"] == ["reserved", "ancestors"]
    assert cols["kept_for"] == ["nightly at 2026-03-01T13:00:00", ""]
    assert cols["details"][1] == "ancestors: load (running)"


def test_gantt_bars_end_now_while_running_and_span_the_duration_when_done() -> None:
    cols, rows = gantt_columns(snapshot())
    bars = {
        (p, a): (s, e, st, c)
        for p, a, s, e, st, c in zip(
            cols["process"],
            cols["attempt"],
            cols["start"],
            cols["end"],
            cols["status"],
            cols["colour"],
            strict=True,
        )
    }
    ms = 1000.0
    now = NOW.timestamp() * ms
    assert bars[("load", 1)] == (now - 30 * ms, now, "running", RUN_COLOURS["running"])
    assert bars[("extract", 2)][1] == now and bars[("extract", 2)][2] == "queued"
    start, end, status, colour = bars[("extract", 1)]
    assert (end - start, status, colour) == (12 * ms, "failed", RUN_COLOURS["failed"])
    assert rows == ["clean", "load", "extract"]  # by first start


def test_every_time_is_in_the_registry_zone_and_named() -> None:
    snap = snapshot(timezone="Europe/Madrid")  # 1 March: UTC+1
    assert "updated 13:00:00 Europe/Madrid" in summary_html(snap)
    assert running_columns(snap)["since"] == ["12:59:30", "12:59:55"]
    cols, _ = gantt_columns(snap)
    hour = 3_600_000.0
    utc, _ = gantt_columns(snapshot())
    # the axis shows Madrid's clock: every bar one hour on from UTC's
    assert [b - a for a, b in zip(utc["start"], cols["start"], strict=True)] == [hour] * 4
    page = PlannerPage(Document())
    page.update(snapshot(timezone="America/New_York"))
    tables = [t for t in page.doc.roots[0].select({"type": DataTable}) if isinstance(t, DataTable)]
    titles = {c.field: c.title for t in tables for c in t.columns}
    assert titles["since"] == "decided (America/New_York)"
    assert titles["at"] == "ended (America/New_York)"
    assert page.gantt_figure.xaxis[0].axis_label == "time (America/New_York)"


def test_recent_attempts_show_their_params_and_result_compactly_and_whole_when_selected() -> None:
    cols = recent_columns(snapshot())
    assert cols["run_id"] == ["clean-1", "extract-4"]  # the latest entry first
    assert cols["params"] == ["{}", '{"table": "orders", "day": "2026-03-01"}']
    assert cols["result"][1] == ""  # a failed attempt has none
    result = cols["result"][0]
    assert result.startswith('{"rows": 42, "note": "xxx') and result.endswith("…")
    assert len(result) == RECENT_TEXT_MAX_CHARS  # bounded: `planner show` has it all
    # an attempt whose params the planner could not look up yet shows none, not "null"
    unknown = snapshot(recent=[{**snapshot()["recent"][0], "params": None}])
    assert recent_columns(unknown)["params"] == [""]

    panel = log_html(cols, 1)  # the selected attempt: its params and result above its log
    assert "params: <code>{&quot;table&quot;: &quot;orders&quot;" in panel
    assert "result: <code>(none)</code>" in panel
    assert "result: <code>{&quot;rows&quot;: 42" in log_html(cols, 0)
    page = PlannerPage(Document())
    page.update(snapshot())
    tables = [t for t in page.doc.roots[0].select({"type": DataTable}) if isinstance(t, DataTable)]
    [recent] = [t for t in tables if t.name == "recent-table"]
    assert [c.field for c in recent.columns][-3:] == ["params", "result", "error"]
    assert page.recent.data["params"][1] == '{"table": "orders", "day": "2026-03-01"}'
    # a selected attempt stays selected when newer ones push it down the table
    page.recent.selected.indices = [1]
    newer = {**snapshot()["recent"][1], "run_id": "clean-2", "params": {"n": 2}}
    page.update(snapshot(recent=[*snapshot()["recent"], newer]))
    assert page.recent.data["run_id"][2] == "extract-4" and page.recent.selected.indices == [2]
    assert "extract-4, attempt 1" in page.log.text


def test_dag_layout_puts_generations_left_to_right() -> None:
    pos = dag_layout(["a", "b", "c", "d"], [("a", "c"), ("b", "c"), ("c", "d")])
    assert pos["a"][0] == pos["b"][0] < pos["c"][0] < pos["d"][0]
    assert dag_layout([], []) == {}


def test_page_bounds_the_dag_and_fills_every_source() -> None:
    names = [f"p{i:03d}" for i in range(MAX_DAG_NODES + 50)]
    snap = snapshot(
        nodes=[{"process": n, "state": "waiting"} for n in names],
        edges=list(itertools.pairwise(names)),
    )
    page = PlannerPage(Document())
    page.update(snap)
    assert len(page.dag_nodes.data["process"]) == MAX_DAG_NODES
    assert len(page.dag_edges.data["x0"]) == MAX_DAG_NODES - 1
    assert page.dag_note.text == f"showing {MAX_DAG_NODES} of {len(names)} processes"
    assert page.running.data["process"] == ["load", "extract"]
    assert page.failures.data["error"] == ["RuntimeError: boom"]
    assert list(page.gantt_figure.y_range.factors) == ["extract", "load", "clean"]


class _CountingStore:
    def __init__(self) -> None:
        self.asked = 0

    def stats(self, since: datetime) -> list[Any]:
        self.asked += 1
        return []


def test_figures_are_asked_again_soon_after_an_attempt_ends_and_rarely_otherwise() -> None:
    from types import SimpleNamespace

    from planner.live.snapshot import STATS_AFTER_CHANGE_S, STATS_EVERY_S, process_figures

    store = _CountingStore()
    driver = SimpleNamespace(store=store, recent=[])
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    process_figures(driver, t0)
    process_figures(driver, t0 + timedelta(seconds=STATS_EVERY_S - 1))
    assert store.asked == 1  # nothing ended: the figures stand
    driver.recent.append({"run_id": "a-1", "attempt": 1, "status": "succeeded", "at": t0})
    process_figures(driver, t0 + timedelta(seconds=STATS_AFTER_CHANGE_S / 2))
    assert store.asked == 1  # at most once a second
    process_figures(driver, t0 + timedelta(seconds=STATS_AFTER_CHANGE_S))
    assert store.asked == 2  # the ended attempt is in the figures
    process_figures(driver, t0 + timedelta(seconds=STATS_AFTER_CHANGE_S + 1))
    assert store.asked == 2
    process_figures(driver, t0 + timedelta(seconds=STATS_AFTER_CHANGE_S + STATS_EVERY_S))
    assert store.asked == 3


# -- the hub: cheap listener, throttled snapshots -------------------------------------------------


class FakeDriver:
    """Just what the hub uses: listeners and a snapshot that can be made to block."""

    def __init__(self) -> None:
        self.listeners: list[Callable[..., None]] = []
        self.calls = 0
        self.release = threading.Event()
        self.release.set()

    def snapshot(self) -> dict[str, Any]:
        self.release.wait(30)
        self.calls += 1
        return snapshot()


class FakeSession:
    def __init__(self) -> None:
        self.pushed: list[dict[str, Any]] = []

    def push(self, snap: dict[str, Any]) -> bool:
        self.pushed.append(snap)
        return True


def test_hub_listener_never_waits_and_snapshots_are_throttled() -> None:
    driver = FakeDriver()
    hub = PageHub(driver, min_interval=0.2).start()  # type: ignore[arg-type]
    session = FakeSession()
    hub._sessions.add(session)  # type: ignore[arg-type]
    try:
        assert driver.listeners == [hub.on_step]
        driver.release.clear()  # a snapshot now blocks: the planner's listener must not
        began = time.monotonic()
        for _ in range(500):
            driver.listeners[0](driver, None)
        assert time.monotonic() - began < 1.0
        driver.release.set()
        wait_for(lambda: session.pushed, what="a pushed snapshot")
        for _ in range(500):
            driver.listeners[0](driver, None)
        wait_for(lambda: len(session.pushed) >= 2, what="a second snapshot")
        elapsed = time.monotonic() - began
        # 1000 planner steps, but at most one snapshot per min_interval (plus the first)
        assert driver.calls <= 2 + elapsed / 0.2
    finally:
        hub.close()
    assert driver.listeners == []


# -- the real page in a real browser --------------------------------------------------------------

CHROMIUM = os.environ.get("PLANNER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PLANNER_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")

# Bokeh 3 renders each model in a shadow root: walk them for text and for the tables' cells.
PAGE_TEXT_JS = """
const out = [];
const walk = (n) => {
  if (n.nodeType === Node.TEXT_NODE) { out.push(n.textContent); return; }
  if (n.nodeType === Node.ELEMENT_NODE && ['SCRIPT', 'STYLE'].includes(n.tagName)) return;
  if (n.shadowRoot) walk(n.shadowRoot);
  for (const c of n.childNodes) walk(c);
};
walk(document.body);
return out.join(' ').replace(/\\s+/g, ' ');
"""
TABLES_JS = """
const tables = [];
const walk = (n) => {
  if (n.shadowRoot) {
    const root = n.shadowRoot;
    if (root.querySelector('.grid-canvas')) {
      const headers = Array.from(root.querySelectorAll('.slick-column-name'))
        .map(h => h.textContent);
      const rows = Array.from(root.querySelectorAll('.grid-canvas .slick-row'))
        .map(r => Array.from(r.querySelectorAll('.slick-cell')).map(c => c.textContent));
      tables.push({headers, rows});
    }
    walk(root);
  }
  for (const c of n.children || []) walk(c);
};
walk(document.body);
return tables;
"""
CELL_TITLES_JS = """
const titles = [];
const walk = (n) => {
  if (n.shadowRoot) {
    for (const s of n.shadowRoot.querySelectorAll('.slick-cell span[title]')) titles.push(s.title);
    walk(n.shadowRoot);
  }
  for (const c of n.children || []) walk(c);
};
walk(document.body);
return titles;
"""
SOURCE_JS = """
const doc = Bokeh.documents[0];
const source = doc && doc.get_model_by_name(arguments[0]);
if (!source) return null;
const out = {};
for (const [k, v] of Object.entries(source.data)) out[k] = Array.from(v);
return out;
"""


SELECT_JS = """
const source = Bokeh.documents[0].get_model_by_name("recent-source");
source.selected.indices = [arguments[0]];
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        message = f"headless browser not installed: {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI must test the live page)", pytrace=False)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1100",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=4, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.fixture
def gates() -> Iterator[None]:
    live_jobs.reset()
    yield
    for event in list(live_jobs.RELEASE.values()):
        event.set()


def _live(tmp_path: Path, client: Client, yaml_text: str) -> LiveDriver:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml_text)
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([path]), now=utcnow())
    return LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)


class Running:
    """A driver planning on a thread, with its page served, both stopped on exit."""

    def __init__(self, driver: LiveDriver, dashboard: Dashboard) -> None:
        self.driver = driver
        self.dashboard = dashboard
        self.thread = threading.Thread(target=driver.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for event in list(live_jobs.RELEASE.values()):
            event.set()
        self.driver.stop()
        self.thread.join(timeout=30)
        self.dashboard.close()
        self.driver.store.close()


def started(*names: str) -> None:
    for name in names:
        assert live_jobs.STARTED[name].wait(30), f"{name} never started"


def page_text(browser: Any) -> str:
    return str(browser.execute_script(PAGE_TEXT_JS))


def table(browser: Any, header: str) -> list[dict[str, str]]:
    """The rendered rows of the table that has a column titled ``header``."""
    for t in browser.execute_script(TABLES_JS):
        if header in t["headers"]:
            return [dict(zip(t["headers"], row, strict=False)) for row in t["rows"]]
    return []


def recent_row(browser: Any, process: str) -> dict[str, str]:
    """The row of ``process``'s latest attempt in the recent attempts' table (``{}``: none)."""
    rows = [r for r in table(browser, "result") if r.get("process") == process]
    return rows[0] if rows else {}


def in_flight(browser: Any, zone: str = "UTC") -> dict[str, str]:
    return {r["process"]: r["status"] for r in table(browser, f"decided ({zone})")}


def source(browser: Any, name: str) -> dict[str, list[Any]]:
    """A ColumnDataSource as the browser holds it (what the canvas draws)."""
    return browser.execute_script(SOURCE_JS, name) or {}


def gantt(browser: Any) -> set[tuple[str, str]]:
    data = source(browser, "gantt-source")
    return set(zip(data.get("process", []), data.get("status", []), strict=True))


def until(browser: Any, condition: Callable[[], Any], what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 30, poll_frequency=0.05).until(
        lambda _b: condition(), message=f"the page never showed {what}"
    )


@pytest.mark.integration
def test_page_in_the_dask_dashboard_follows_the_planner(
    tmp_path: Path, client: Client, browser: Any, gates: None, caplog: pytest.LogCaptureFixture
) -> None:
    # pytest's handlers keep the root logger at WARNING here (a worker process has none)
    caplog.set_level(logging.INFO, logger="tests.chatty")
    driver = _live(
        tmp_path,
        client,
        """
slots: 3
processes:
  alpha: {run: tests.live_jobs:gate, params: {name: alpha}}
  beta: {run: tests.live_jobs:gate, params: {name: beta}}
  gamma: {run: tests.live_jobs:gate, params: {name: gamma}, ancestors: [alpha]}
  broken: {run: workflows.jobs.demo:fail, retries: 0}
  parked: {run: workflows.jobs.demo:noop, hold: true}
  talker: {run: tests.live_jobs:chatty, params: {name: talker}, ancestors: [broken]}
  chatter: {run: tests.live_jobs:chatty, params: {name: chatter}}
""",
    )
    connection = Connection(client=client, remote=False, dashboard=client.dashboard_link)
    with Running(driver, serve(driver, connection)) as live:
        dashboard = live.dashboard
        assert dashboard.mounted
        assert dashboard.url.endswith(PAGE_PATH)
        started("alpha", "beta")
        browser.get(dashboard.url)

        until(
            browser,
            lambda: in_flight(browser) == {"alpha": "running", "beta": "running"},
            "alpha and beta running",
        )
        until(
            browser, lambda: "Slots: 2 in use, 1 free of 3" in page_text(browser), "the slot counts"
        )
        until(browser, lambda: table(browser, "error"), "the failure")
        [failure] = table(browser, "error")
        assert failure["process"] == "broken" and failure["status"] == "failed"
        assert failure["error"] == "RuntimeError: this job always fails"
        # every cell shows its whole text on hover, however narrow its column
        assert "RuntimeError: this job always fails" in browser.execute_script(CELL_TITLES_JS)
        queue = {r["process"]: r["reasons"] for r in table(browser, "slot kept for")}
        assert queue["gamma"] == "ancestors" and queue["parked"] == "hold"
        until(
            browser,
            lambda: (
                {("alpha", "running"), ("beta", "running"), ("broken", "failed")} <= gantt(browser)
            ),
            "the Gantt bars",
        )
        dag = source(browser, "dag-nodes")
        states = dict(zip(dag["process"], dag["state"], strict=True))
        assert states["alpha"] == "running" and states["parked"] == "held"

        # a planner event updates the open page in place: no reload
        browser.execute_script("window.plannerPageMarker = 'same page'")
        live_jobs.RELEASE["alpha"].set()
        started("gamma")
        until(
            browser,
            lambda: in_flight(browser) == {"beta": "running", "gamma": "running"},
            "gamma started after alpha",
        )
        until(browser, lambda: ("alpha", "succeeded") in gantt(browser), "alpha succeeded")
        assert browser.execute_script("return window.plannerPageMarker") == "same page"
        assert "Slots: 2 in use, 1 free of 3" in page_text(browser)

        # recent attempts, each with its params and result, whole on hover
        until(
            browser,
            lambda: recent_row(browser, "chatter").get("params") == '{"name": "chatter"}',
            "chatter's params among the recent attempts",
        )
        assert recent_row(browser, "chatter")["result"] == '{"rows": 3, "name": "chatter"}'
        assert recent_row(browser, "broken")["result"] == ""  # it failed: no result
        assert '{"rows": 3, "name": "chatter"}' in browser.execute_script(CELL_TITLES_JS)
        # and its log: selecting one shows it, with its params and result in full
        rows = source(browser, "recent-source")["process"]
        browser.execute_script(SELECT_JS, rows.index("chatter"))
        until(browser, lambda: "chatter stdout line 2" in page_text(browser), "chatter's log")
        text = page_text(browser)
        assert "INFO tests.chatty: chatter logging line 0" in text
        assert 'params: {"name": "chatter"} · result: {"rows": 3, "name": "chatter"}' in text

        # and the per-process figures, which count chatter's success within a second or so
        def figures() -> dict[str, dict[str, str]]:
            return {r["process"]: r for r in table(browser, "late p90")}

        until(browser, lambda: figures().get("chatter", {}).get("ok") == "1", "the statistics")
        assert figures()["broken"]["failed"] == "1"

        # and Dask's own pages link to it
        browser.get(urljoin(dashboard.url, "status"))
        links = browser.execute_script(
            "return Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))"
        )
        assert "planner" in links


@pytest.mark.integration
def test_page_on_its_own_port_for_a_remote_scheduler(
    tmp_path: Path, client: Client, browser: Any, gates: None
) -> None:
    driver = _live(
        tmp_path,
        client,
        """
slots: 2
timezone: Asia/Tokyo
processes:
  solo: {run: tests.live_jobs:gate, params: {name: solo}}
""",
    )
    connection = Connection(client=client, remote=True, dashboard=client.dashboard_link)
    with Running(driver, serve(driver, connection, port=0)) as live:
        dashboard = live.dashboard
        assert not dashboard.mounted
        assert dashboard.url.startswith("http://127.0.0.1:") and dashboard.url.endswith(PAGE_PATH)
        started("solo")
        browser.get(dashboard.url)
        before = datetime.now(TOKYO)
        until(
            browser,
            lambda: in_flight(browser, "Asia/Tokyo") == {"solo": "running"},
            "solo running, its time headed in the registry's zone",
        )
        [decided] = [r["decided (Asia/Tokyo)"] for r in table(browser, "decided (Asia/Tokyo)")]
        hours = {before.strftime("%H"), datetime.now(TOKYO).strftime("%H")}
        assert decided[:2] in hours  # Tokyo's clock, not UTC's
        assert "updated" in page_text(browser) and "Asia/Tokyo" in page_text(browser)
        assert "UTC" not in page_text(browser)  # one zone on the page
        until(
            browser, lambda: "Slots: 1 in use, 1 free of 2" in page_text(browser), "the slot counts"
        )
        live_jobs.RELEASE["solo"].set()
        until(
            browser, lambda: "Slots: 0 in use, 2 free of 2" in page_text(browser), "the slot freed"
        )
        assert in_flight(browser, "Asia/Tokyo") == {}
        until(browser, lambda: ("solo", "succeeded") in gantt(browser), "solo succeeded")
