"""A live planner with its HTTP API for the API and metrics tests: a real ``LiveDriver`` on a real
in-process ``LocalCluster`` and SQLite, and the API served by uvicorn on a free port, reached over
real HTTP with httpx."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from distributed import Client

from planner.interfaces.api import ApiServer, PlannerMetrics, start_api
from planner.live.dispatch import Dispatcher
from planner.live.loop import LiveDriver, utcnow
from registry.definitions.loader import load_files
from registry.storage.sqlstore import SqlStore

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class LivePlanner:
    store: SqlStore  # the planner's
    driver: LiveDriver
    api: ApiServer
    http: httpx.Client  # base URL: .../api/v1

    def metrics_text(self) -> str:
        response = httpx.get(f"{self.api.root}/metrics", timeout=10)
        assert response.status_code == 200
        return response.text


def apply(tmp_path: Path, yaml_text: str) -> str:
    """A SQLite database with ``yaml_text`` applied; its URL."""
    url = f"sqlite:///{tmp_path}/planner.db"
    path = tmp_path / "registry.yaml"
    path.write_text(yaml_text)
    store = SqlStore(url)
    store.apply(load_files([path]), now=utcnow())
    store.close()
    return url


@contextmanager
def serving(url: str, *, token: str | None = TOKEN) -> Iterator[tuple[ApiServer, httpx.Client]]:
    """The API alone (no planner), on its own store."""
    store = SqlStore(url)
    api = start_api(store, token=token, port=0)
    try:
        with httpx.Client(base_url=api.url, timeout=30) as http:
            yield api, http
    finally:
        api.close()
        store.close()


@contextmanager
def live_planner(
    tmp_path: Path, client: Client, yaml_text: str, *, token: str | None = TOKEN
) -> Iterator[LivePlanner]:
    """A planner driving ``yaml_text`` until the block ends, with its API and metrics."""
    url = apply(tmp_path, yaml_text)
    store = SqlStore(url)
    driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)
    metrics = PlannerMetrics()
    detach = metrics.attach(driver)
    api_store = SqlStore(url)
    api = start_api(api_store, token=token, metrics=metrics, port=0)
    thread = threading.Thread(target=driver.run, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=api.url, timeout=30) as http:
            yield LivePlanner(store=store, driver=driver, api=api, http=http)
    finally:
        driver.stop()
        thread.join(30)
        driver.shutdown(cancel=True)
        detach()
        api.close()
        api_store.close()
        store.close()
