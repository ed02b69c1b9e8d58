"""Message batching of the planner's own in-process cluster is shortened to 1 ms on every
connection, for workers that join later too; a remote cluster keeps Dask's settings. Real
clusters: worker processes behind nannies, and a real ``dask scheduler``/``dask worker``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planner.live import comms
from planner.live.cluster import connect
from tests.test_cluster_config import REPO, dask_cluster
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

#: a scheduler the planner accepts, which can import this module's functions
REMOTE_ENV = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0", "PYTHONPATH": str(REPO)}


def _scheduler_intervals(dask_scheduler: Any = None) -> dict[str, list[float]]:
    return {
        "workers": [b.interval for b in dask_scheduler.stream_comms.values()],
        "clients": [b.interval for b in dask_scheduler.client_comms.values()],
    }


def _worker_interval(dask_worker: Any = None) -> float:
    return float(dask_worker.batched_stream.interval)


def test_the_in_process_cluster_batches_for_a_millisecond_at_most() -> None:
    with connect(n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0") as conn:
        client = conn.client
        assert client.scheduler_comm.interval == comms.INTERVAL_S
        seen = client.run_on_scheduler(_scheduler_intervals)
        assert seen["workers"] and set(seen["workers"]) == {comms.INTERVAL_S}
        assert seen["clients"] and set(seen["clients"]) == {comms.INTERVAL_S}
        assert set(client.run(_worker_interval).values()) == {comms.INTERVAL_S}
        client.cluster.scale(2)  # a worker that joins later is shortened too
        wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, 60, "a second worker")
        wait_for(
            lambda: set(client.run(_worker_interval).values()) == {comms.INTERVAL_S},
            what="the new worker's stream",
        )
        assert set(client.run_on_scheduler(_scheduler_intervals)["workers"]) == {comms.INTERVAL_S}
        assert client.submit(sum, [1, 2], pure=False).result(timeout=30) == 3


def test_a_remote_cluster_keeps_dask_s_batching(tmp_path: Path) -> None:
    with (
        dask_cluster(tmp_path, env=REMOTE_ENV) as (address, _),
        connect(address) as conn,
    ):
        seen = conn.client.run_on_scheduler(_scheduler_intervals)
        assert comms.INTERVAL_S not in seen["workers"]  # Dask's 5 ms
        assert set(conn.client.run(_worker_interval).values()) == {0.002}  # Dask's 2 ms
