"""Dask task keys begin with the process name: Dask's ``key_split`` (the prefix the dashboard
groups tasks by) gives back the process, for names with dots, dashes and underscores; and keys are
still one per attempt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.utils
import distributed.utils
import pytest
from distributed import Client, LocalCluster
from hypothesis import given
from hypothesis import strategies as st

from planner.live.dispatch import Dispatcher
from planner.live.keys import attempt_key, attempt_of_key, key_prefix
from planner.live.loop import LiveDriver, utcnow
from registry.definitions.loader import load_files
from registry.storage.sqlstore import SqlStore

#: the names the registry allows (``^[A-Za-z_][A-Za-z0-9_.-]*$``), short enough to be quick
NAMES = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,30}\Z")


@pytest.mark.parametrize(
    ("process", "prefix"),
    [
        ("extract", "extract"),
        ("etl.extract", "etl.extract"),
        ("load_daily", "load_daily"),
        ("load-daily", "load-daily"),
        ("etl.load-daily_v2", "etl.load~daily_v2"),  # Dask would stop at "daily_v2"
        ("load-v2", "load~v2"),
        ("x-database", "x~database"),  # 8 letters from a to f first: Dask takes it for a hash
        ("a-b.c-d", "a~b.c-d"),
        ("Extract-Customers", "Extract-Customers"),
    ],
)
def test_dask_groups_the_keys_of_a_process_under_its_name(process: str, prefix: str) -> None:
    key = attempt_key(f"{process}-12", 3)
    assert key == f"{prefix}-12-a3"
    assert dask.utils.key_split(key) == prefix
    assert distributed.utils.key_split(key) == prefix
    if "~" not in prefix:
        assert dask.utils.key_split(key) == process  # the name itself


@given(NAMES, st.integers(min_value=1, max_value=10**9), st.integers(min_value=1, max_value=99))
def test_every_attempt_has_its_own_key_grouped_with_its_process(
    process: str, seq: int, attempt: int
) -> None:
    run_id = f"{process}-{seq}"
    key = attempt_key(run_id, attempt)
    assert attempt_of_key(key) == (run_id, attempt)  # one key per attempt: it reads back
    assert key.startswith(key_prefix(process) + "-")
    if not process.startswith("_"):  # Dask drops leading underscores, whatever we do
        assert dask.utils.key_split(key) == key_prefix(process)


@given(NAMES, NAMES)
def test_two_processes_never_share_a_key(a: str, b: str) -> None:
    if a != b:
        assert attempt_key(f"{a}-1", 1) != attempt_key(f"{b}-1", 1)
        assert key_prefix(a) != key_prefix(b)


def test_a_key_not_made_by_the_planner_is_refused() -> None:
    for key in ("planner-x-1-a1-b", "x-1", "x-a-a1", "x-1-b1"):
        with pytest.raises(ValueError, match="not the key of an attempt"):
            attempt_of_key(key)


# -- on a real cluster ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _prefixes(dask_scheduler: Any = None) -> list[str]:
    return sorted(dask_scheduler.task_prefixes)


@pytest.mark.integration
def test_the_scheduler_groups_tasks_per_process(tmp_path: Path, client: Client) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(
        """
processes:
  etl.extract: {run: workflows.jobs.demo:noop}
  load-v2: {run: workflows.jobs.demo:noop, ancestors: [etl.extract]}
  load_daily: {run: workflows.jobs.demo:noop, retries: 0}
"""
    )
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([path]), now=utcnow())
    driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)
    summary = driver.run(until_idle=True)
    store.close()
    assert summary.statuses == {"succeeded": 3}
    prefixes = set(client.run_on_scheduler(_prefixes))
    assert {"etl.extract", "load~v2", "load_daily"} <= prefixes
    assert "planner" not in prefixes
