"""What the live page shows of each recent attempt's run params: looked up in the store once per
run, in one query for the lot (``planner.live.snapshot.with_params``); and ``planner serve``'s page,
read from the database, showing params and results in a real headless Chromium."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from planner.live.loop import utcnow
from registry.definitions.loader import load_files
from registry.storage.sqlstore import SqlStore
from tests.test_dashboard import browser, recent_row, until  # noqa: F401 (browser: a fixture)


class _ParamsStore:
    """The store calls ``with_params`` makes: a batch of the newest attempts, then one by one."""

    def __init__(self, batch: list[str], others: dict[str, dict[str, Any]]) -> None:
        self.batch = batch
        self.others = others
        self.calls: list[str] = []

    def history(self, limit: int) -> list[Any]:
        from types import SimpleNamespace

        self.calls.append("history")
        return [SimpleNamespace(run_id=r, params={"of": r}) for r in self.batch]

    def run(self, run_id: str) -> Any:
        from types import SimpleNamespace

        from registry.errors import RunNotFound

        self.calls.append(run_id)
        if run_id not in self.others:
            raise RunNotFound(run_id)
        return SimpleNamespace(params=self.others[run_id])


def test_recent_params_are_looked_up_once_per_run_in_one_query_and_kept() -> None:
    from types import SimpleNamespace

    from planner.live.snapshot import PARAMS_EVERY_S, with_params

    store = _ParamsStore(["a-2", "a-1"], {"old-1": {"day": 1}})
    driver = SimpleNamespace(store=store)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    recent = [{"run_id": r} for r in ("old-1", "gone-1", "a-1", "a-2")]
    shown = with_params(driver, recent, t0)
    assert [r["params"] for r in shown] == [{"day": 1}, {}, {"of": "a-1"}, {"of": "a-2"}]
    assert store.calls == ["history", "gone-1", "old-1"]  # a run not found has no params
    assert "params" not in recent[0]  # the driver's own entries stay as they are
    with_params(driver, [*recent[2:], {"run_id": "a-3"}], t0)
    assert store.calls[3:] == []  # asked again only PARAMS_EVERY_S later; a-3 waits
    later = with_params(driver, [*recent[2:], {"run_id": "a-3"}], t0 + timedelta(seconds=1))
    assert store.calls[3:] == ["history", "a-3"] and PARAMS_EVERY_S <= 1
    assert later[0]["params"] == {"of": "a-1"} and set(driver._params) == {"a-1", "a-2", "a-3"}


@pytest.mark.integration
def test_the_page_of_planner_serve_shows_params_and_results_from_the_database(
    tmp_path: Path,
    browser: Any,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    from planner.interfaces.page.server import serve_alone
    from planner.interfaces.page.watch import StoreWatch
    from planner.live.runner import run_planner

    caplog.set_level(logging.INFO, logger="tests.chatty")
    path = tmp_path / "registry.yaml"
    path.write_text(
        """
processes:
  talk: {run: tests.live_jobs:chatty, params: {name: talk, lines: 2}}
  shell: {command: "echo warming up; echo '[1, 2]'"}
"""
    )
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([path]), now=utcnow())
    try:
        run_planner(store, processes=False, until_idle=True, dashboard_address=":0")
    finally:
        store.close()
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")  # planner serve's own, after the run
    watch = StoreWatch(store).start()
    dashboard = serve_alone(watch, port=0)
    try:
        browser.get(dashboard.url)
        until(browser, lambda: recent_row(browser, "talk").get("result"), "talk's result")
        talk = recent_row(browser, "talk")
        assert (talk["params"], talk["result"]) == (
            '{"name": "talk", "lines": 2}',
            '{"rows": 2, "name": "talk"}',
        )
        assert recent_row(browser, "shell")["result"] == "[1, 2]"  # its stdout's last line
    finally:
        dashboard.close()
        watch.close()
        store.close()
