"""How long Dask may hold a message to batch it with others, shortened where the planner may.

Dask batches the messages of each long-lived connection (``distributed.batched.BatchedSend``): a
message sent within the interval of the previous one waits out the rest of it. The intervals are
fixed in Dask's code — client → scheduler 10 ms, worker → scheduler 2 ms, scheduler → client
2 ms, scheduler → worker 5 ms — and tuned for graphs of many small tasks. A planner's tasks are
jobs, a few messages each, and every hand-over of a slot crosses several of those connections:
an attempt's end reaches the planner through two of them, the next start reaches its worker
through two more. So:

- ``quicken(client)``: the planner's own client sends to the scheduler within ``INTERVAL_S``
  (any cluster: it changes only this client's connection);
- ``quicken_cluster(client)``: for the in-process cluster the planner builds and owns
  (``planner.live.cluster``), the scheduler's connections to every worker and client, and every
  worker's connection to the scheduler, too, including workers that join later (adaptive
  clusters). A remote cluster (``--scheduler``) is shared and keeps its own settings.

Measured in ``benchmarks/bench_peers.py``: a chain's hop and a DAG's hand-over take a few ms
less, and raw ``client.map`` on such a cluster runs twice as many no-op jobs per second.
"""

from __future__ import annotations

from typing import Any

from distributed import Client
from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

__all__ = ["INTERVAL_S", "quicken", "quicken_cluster"]

#: seconds a connection may hold a message to batch it with others (Dask: 2–10 ms)
INTERVAL_S = 0.001


def quicken(client: Client) -> None:
    """Shorten the client's batching interval to ``INTERVAL_S`` (set again after a reconnect;
    a client without the attribute keeps Dask's own)."""
    _shorten(getattr(client, "scheduler_comm", None))


def quicken_cluster(client: Client) -> None:
    """Shorten every batching interval of the cluster ``client`` is connected to, now and for
    the workers and clients that connect later. For a cluster the planner owns."""
    quicken(client)
    client.register_plugin(QuickScheduler(), name=QuickScheduler.name)
    client.register_plugin(QuickWorker(), name=QuickWorker.name)


def _shorten(stream: Any) -> None:
    if stream is not None and getattr(stream, "interval", INTERVAL_S) > INTERVAL_S:
        stream.interval = INTERVAL_S


class QuickScheduler(SchedulerPlugin):
    """The scheduler's streams to its workers and clients batch for ``INTERVAL_S`` at most."""

    name = "dask-planner-quick-scheduler"

    def __init__(self) -> None:
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        for stream in [*scheduler.stream_comms.values(), *scheduler.client_comms.values()]:
            _shorten(stream)

    def add_worker(self, scheduler: Any = None, worker: str = "", **kwargs: Any) -> None:
        # called once the scheduler made the worker's stream
        _shorten(scheduler.stream_comms.get(worker))

    def add_client(self, scheduler: Any = None, client: str = "", **kwargs: Any) -> None:
        # called just before the scheduler makes the client's stream: shorten it right after
        scheduler.loop.add_callback(lambda: _shorten(scheduler.client_comms.get(client)))


class QuickWorker(WorkerPlugin):
    """A worker's stream to the scheduler batches for ``INTERVAL_S`` at most."""

    name = "dask-planner-quick-worker"

    def setup(self, worker: Any) -> None:
        _shorten(getattr(worker, "batched_stream", None))
