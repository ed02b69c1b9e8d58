"""Getting a Dask client: an in-process ``LocalCluster`` by default, or an existing scheduler.

We never manage clusters ourselves: anything Dask runs on (dask-jobqueue, Kubernetes, a
``dask scheduler`` you started) is reached with ``--scheduler ADDRESS``. TLS and other connection
settings come from Dask's own configuration (``distributed.comm.tls.*``), which ``Client`` reads
(a ``tls://`` address with ``distributed.comm.tls.ca-file`` and ``.client.cert``/``.client.key``).
A remote scheduler that would re-run an attempt after a worker death on its own
(``distributed.scheduler.allowed-failures`` above 0, Dask's default is 3) is refused with
``ClusterMisconfigured`` unless ``allow_reruns`` (``planner run --allow-reruns``) says to go on.

The in-process cluster is ours alone. Its worker processes reach the scheduler over loopback
TCP, where any local user's Dask client could connect and run code as us; so it speaks TLS with a
throwaway certificate (``Security.temporary()``: in memory, only our client and workers have it).
With ``processes=False`` it uses Dask's ``inproc://`` transport, reachable from this process only.
Being ours, its connections batch messages for 1 ms at most (``planner.live.comms``), not Dask's
2–5 ms: every hand-over of a slot crosses four of them.

An in-process cluster's work ends with the planner: before it closes, every attempt on it is
cancelled (commands killed, ``ctx.cancelled`` set); if the planner dies instead, its worker
processes die with it and their guardians kill the commands (``planner.live.worker.guardian``).
A remote cluster's work survives the planner.

Adaptive in-process cluster (``planner run --adapt MIN:MAX``): Dask's ``Adaptive`` starts and
stops workers by the scheduler's own view of the work — the tasks queued and processing — and
the planner only submits as many attempts as it has slots. So while adapting, the cluster's
capacity is what it can grow to (``Connection.reachable_threads``: MAX workers × threads per
worker), not the threads it has now; the live driver's slots default to that, the ready runs
queue on the scheduler, and Dask scales up to run them, and back down when the workers idle. The
workers it adds come from the same worker spec as the first ones (TLS certificate, memory
limit, nanny), under the same Dask config (``allowed-failures`` 0), and start their guardian on
their first command like any other. Its pace is Dask's: ``distributed.adaptive.interval``,
``wait-count`` and ``target-duration`` in Dask's config (Dask's defaults unless set).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dask
from dask.system import CPU_COUNT
from distributed import Client, LocalCluster, Security
from distributed.deploy.utils import nprocesses_nthreads
from distributed.worker_memory import parse_memory_limit

from planner.live.comms import quicken_cluster
from planner.live.worker import cancel_all_attempts
from registry.errors import PlannerError

log = logging.getLogger(__name__)


class ClusterMisconfigured(PlannerError, RuntimeError):
    """The remote scheduler cannot be reached as configured, or is set up in a way the planner
    cannot run on safely (exit 1)."""


@dataclass(frozen=True, slots=True)
class Adapt:
    """Bounds of an adaptive in-process cluster, in workers: ``MIN:MAX`` on the command line."""

    minimum: int
    maximum: int

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.maximum or self.maximum < 1:
            raise ValueError(
                f"adaptive bounds {self.minimum}:{self.maximum} need 0 <= MIN <= MAX and MAX >= 1"
            )

    @classmethod
    def parse(cls, text: str) -> Adapt:
        """``"MIN:MAX"`` (integers, 0 <= MIN <= MAX, MAX >= 1); ValueError saying what is wrong."""
        low, sep, high = text.strip().partition(":")
        try:
            if not sep:
                raise ValueError
            minimum, maximum = int(low), int(high)
        except ValueError:
            raise ValueError(
                f"{text!r} is not MIN:MAX, two whole numbers of workers (e.g. 1:4)"
            ) from None
        return cls(minimum=minimum, maximum=maximum)


@dataclass(frozen=True, slots=True)
class Connection:
    client: Client
    remote: bool  # an existing scheduler (runs survive the planner) vs. our in-process cluster
    dashboard: str | None  # the Dask dashboard's address
    #: threads an adaptive cluster can grow to; None: the cluster offers what it has now
    reachable_threads: int | None = None

    @property
    def in_process(self) -> bool:
        return not self.remote


# A worker dying mid-job must become a failed attempt that the planner retries by its own policy,
# never a silent rerun by the scheduler (that could run an attempt twice).
PLANNER_DASK_CONFIG = {"distributed.scheduler.allowed-failures": 0}
RERUNS_FIX = (
    "set it to 0 where the scheduler starts: DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0 in"
    " its environment, or `distributed: {scheduler: {allowed-failures: 0}}` in its Dask config"
)


def check_reruns(
    client: Client, *, allow_reruns: bool = False, say: Callable[[str], None] | None = None
) -> None:
    """Refuse a scheduler that re-runs the attempts of a dead worker by itself (see module doc)."""
    address = client.scheduler.address if client.scheduler is not None else "?"
    try:
        allowed = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
    except Exception as exc:
        problem = f"could not read distributed.scheduler.allowed-failures from {address}: {exc}"
    else:
        if not allowed:
            return
        problem = (
            f"the scheduler at {address} has distributed.scheduler.allowed-failures = {allowed}"
            f" (Dask's default is 3): when a worker dies mid-attempt, Dask starts the attempt"
            f" again by itself, outside the planner's retry policy"
        )
    if not allow_reruns:
        raise ClusterMisconfigured(f"{problem}; {RERUNS_FIX}; or pass --allow-reruns to go on")
    (say or log.warning)(
        f"warning: {problem}; going on (--allow-reruns): such a re-run is not executed, it fails"
        " the attempt (AttemptAlreadyRan), retried by policy"
    )


TLS_SETTINGS = (
    "a tls:// scheduler needs Dask's TLS settings: distributed.comm.tls.ca-file,"
    " distributed.comm.tls.client.cert and .client.key (e.g. DASK_DISTRIBUTED__COMM__TLS__CA_FILE,"
    " DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT and DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY)"
)


def _remote_client(address: str) -> Client:
    try:
        return Client(address)
    except (OSError, TypeError, ValueError) as exc:  # unreachable, refused, TLS not configured
        hint = (
            TLS_SETTINGS
            if address.startswith("tls://")
            else "is the address right? a TLS scheduler needs tls://"
        )
        raise ClusterMisconfigured(
            f"cannot connect to the Dask scheduler at {address}: {type(exc).__name__}: {exc}"
            f" ({hint})"
        ) from exc


@contextmanager
def connect(
    scheduler: str | None = None,
    *,
    processes: bool = True,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    dashboard_address: str = "127.0.0.1:8787",
    allow_reruns: bool = False,
    say: Callable[[str], None] | None = None,
    adapt: Adapt | None = None,
) -> Iterator[Connection]:
    """Yield a connection; an in-process cluster is closed on exit, a remote one is left alone.

    ``allow_reruns`` and ``say`` (where a warning goes) only matter for a remote scheduler;
    ``adapt`` makes the in-process cluster adaptive (it replaces ``n_workers``)."""
    if adapt is not None and scheduler:
        raise ClusterMisconfigured(
            "--adapt sizes the in-process cluster; a remote cluster adapts by its own deployment"
            " (give the planner its slots with --slots or the registry's slots:)"
        )
    with dask.config.set(PLANNER_DASK_CONFIG):
        if scheduler:
            client = _remote_client(scheduler)
            try:
                check_reruns(client, allow_reruns=allow_reruns, say=say)
                yield Connection(client=client, remote=True, dashboard=client.dashboard_link)
            finally:
                client.close()
            return
        sizing: dict[str, object] = {
            "n_workers": n_workers,
            "threads_per_worker": threads_per_worker,
        }
        reachable = None
        if adapt is not None:
            # each worker: the threads of Dask's default local worker, 1/MAX of the memory
            per_worker = threads_per_worker or (
                nprocesses_nthreads()[1] if processes else CPU_COUNT
            )
            sizing = {
                "n_workers": adapt.minimum,
                "threads_per_worker": per_worker,
                "memory_limit": parse_memory_limit("auto", 1, adapt.maximum, logger=log),
            }
            reachable = adapt.maximum * per_worker
        cluster = LocalCluster(
            processes=processes,
            dashboard_address=dashboard_address,
            # worker processes talk TLS on loopback; threads in one process use Dask's inproc
            **({"host": "127.0.0.1", "security": Security.temporary()} if processes else {}),
            **sizing,
        )
        if adapt is not None:
            # interval, wait-count and target-duration: Dask's config (distributed.adaptive.*)
            cluster.adapt(minimum=adapt.minimum, maximum=adapt.maximum)
        client = Client(cluster)
        try:
            quicken_cluster(client)  # ours alone: its messages need not wait to be batched
            yield Connection(
                client=client,
                remote=False,
                dashboard=client.dashboard_link,
                reachable_threads=reachable,
            )
        finally:
            with contextlib.suppress(Exception):  # a broken cluster: the guardians still act
                client.run(cancel_all_attempts, "the planner stopped", on_error="ignore")
            client.close()
            cluster.close()
