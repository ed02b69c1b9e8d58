"""Getting a Dask client: an in-process ``LocalCluster`` by default, or an existing scheduler.

We never manage clusters ourselves: anything Dask runs on (dask-jobqueue, Kubernetes, a
``dask scheduler`` you started) is reached with ``--scheduler ADDRESS``. TLS and other connection
settings come from Dask's own configuration (``distributed.comm.tls.*``), which ``Client`` reads.

An in-process cluster's work ends with the planner: before it closes, every attempt on it is
cancelled (commands killed, ``ctx.cancelled`` set); if the planner dies instead, its worker
processes die with it and their guardians kill the commands (``planner.live.worker.guardian``).
A remote cluster's work survives the planner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dask
from distributed import Client, LocalCluster

from planner.live.worker import cancel_all_attempts


@dataclass(frozen=True, slots=True)
class Connection:
    client: Client
    remote: bool  # an existing scheduler (runs survive the planner) vs. our in-process cluster
    dashboard: str | None  # the Dask dashboard's address

    @property
    def in_process(self) -> bool:
        return not self.remote


# A worker dying mid-job must become a failed attempt that the planner retries by its own policy,
# never a silent rerun by the scheduler (that could run an attempt twice).
PLANNER_DASK_CONFIG = {"distributed.scheduler.allowed-failures": 0}


@contextmanager
def connect(
    scheduler: str | None = None,
    *,
    processes: bool = True,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    dashboard_address: str = "127.0.0.1:8787",
) -> Iterator[Connection]:
    """Yield a connection; an in-process cluster is closed on exit, a remote one is left alone."""
    with dask.config.set(PLANNER_DASK_CONFIG):
        if scheduler:
            client = Client(scheduler)
            try:
                yield Connection(client=client, remote=True, dashboard=client.dashboard_link)
            finally:
                client.close()
            return
        cluster = LocalCluster(
            processes=processes,
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            dashboard_address=dashboard_address,
            # worker processes talk TCP on loopback; threads in one process use Dask's inproc
            **({"host": "127.0.0.1"} if processes else {}),
        )
        client = Client(cluster)
        try:
            yield Connection(client=client, remote=False, dashboard=client.dashboard_link)
        finally:
            with contextlib.suppress(Exception):  # a broken cluster: the guardians still act
                client.run(cancel_all_attempts, "the planner stopped", on_error="ignore")
            client.close()
            cluster.close()
