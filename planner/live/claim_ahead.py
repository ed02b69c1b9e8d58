"""Claims sent ahead: a worker asks for an attempt's claim as Dask hands it a thread, not from it.

The at-most-once claim (``planner.live.once``) is one question to the scheduler per attempt. Asked
from the task's thread, it costs a hop onto the worker's event loop and back
(``distributed.utils.sync``) and a round trip the job waits for, in the interpreter lock that the
scheduler, the worker and the planner share on an in-process cluster. ``ClaimAhead``, a worker
plugin, asks instead from the event loop, at the moment the worker's state machine decides to
execute the task (its ``executing`` transition, before the thread is started): the question goes
over the worker's batched stream to the scheduler, whose answer comes back the same way and is
waiting, as a ``threading.Event``, by the time the task's thread looks (``await_grant``). A task
that finds no claim sent ahead for it (a worker without the plugin, a stream that would not send)
claims from its thread as before.

On an in-process cluster of threads (``--local-threads``) the scheduler runs on the worker's own
event loop: the plugin then calls the scheduler's claim handler directly, from that loop, and the
answer is there before the transition ends — no message either way, the same handler, the same
guarantee. A worker in a process of its own sends the message.

What it does not change: the scheduler grants the first claim of a submission and refuses any
other, and publishes the attempt's start only as it grants (``once``). A chained attempt is
claimed ahead only if its ancestor's outcome, already on the worker, is a success; otherwise it
claims nothing and runs nothing, as before.

What it moves: a claim granted ahead counts the attempt as started a little earlier. If the
worker is closing between the transition and the thread (Dask then reschedules the task without
running it), the attempt was granted but never ran: its re-execution elsewhere is refused, and
the planner records the attempt failed and retries it by policy, exactly as when a worker dies
between a claim and the job. Adaptive clusters retire only idle workers, so this window holds no
task there.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin
from distributed.worker import WORKER_ANY_RUNNING

log = logging.getLogger(__name__)

__all__ = ["CLAIM_OP", "GRANT_OP", "ClaimAhead", "await_grant", "started_event"]

#: the name of the claim handler on the scheduler (``once.HANDLER``)
HANDLER = "planner_claim_attempt_3"
#: the worker → scheduler message asking for a claim (handled in ``once``)
CLAIM_OP = "planner_claim_ahead_3"
#: the scheduler → worker answer
GRANT_OP = "planner_grant_3"
#: where a worker keeps its claims sent ahead (on the worker, so that a second registration of
#: the plugin, by another planner on a shared cluster, keeps the claims in flight)
_STATE = "_dask_planner_claims_ahead"
#: the tasks whose claims the plugin sends: (module, function) → the task's arguments end with
#: ``spec, key, token`` (see ``planner.live.tasks``)
_TASKS = {("planner.live.tasks", "run_attempt"), ("planner.live.tasks", "run_chained")}
#: claims kept waiting for their thread at most (the oldest go: their thread then asks itself)
MAX_PENDING = 10_000
#: seconds between looks at the worker's status while a thread waits for its answer
POLL_S = 1.0


class _Grant:
    __slots__ = ("answer", "ready")

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.answer = False


class _Claims:
    """A worker's claims in flight: token → its answer to come, and Dask key → token."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.grants: OrderedDict[str, _Grant] = OrderedDict()
        self.tokens: dict[str, str] = {}

    def add(self, key: str, token: str) -> None:
        with self.lock:
            self.grants[token] = _Grant()
            self.tokens[key] = token
            while len(self.grants) > MAX_PENDING:
                self.grants.popitem(last=False)

    def granted(self, token: str = "", granted: bool = False, **_: Any) -> None:
        """The scheduler's answer (a stream handler, on the worker's event loop)."""
        with self.lock:
            grant = self.grants.get(token)
        if grant is not None:
            grant.answer = bool(granted)
            grant.ready.set()

    def get(self, token: str) -> _Grant | None:
        with self.lock:
            return self.grants.get(token)

    def drop(self, token: str) -> None:
        with self.lock:
            self.grants.pop(token, None)

    def forget(self, key: str) -> None:
        with self.lock:
            token = self.tokens.pop(key, None)
            if token is not None:
                self.grants.pop(token, None)


class ClaimAhead(WorkerPlugin):
    """Sends each planner attempt's claim when the worker decides to execute it."""

    name = "dask-planner-claim-ahead-3"

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.worker: Any = None
        self.claims: _Claims | None = None
        self.local: Any = None  # the scheduler, when it shares this worker's loop

    def setup(self, worker: Any) -> None:
        claims = getattr(worker, _STATE, None)
        if claims is None:
            claims = _Claims()
            setattr(worker, _STATE, claims)
        worker.stream_handlers[GRANT_OP] = claims.granted
        self.worker, self.claims = worker, claims
        self.local = _scheduler_on_loop(worker)

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        claims = self.claims
        if claims is None:
            return
        if finish == "executing" and start in ("ready", "constrained"):
            self._claim(claims, key)
        elif finish in ("memory", "error", "released", "forgotten"):
            claims.forget(str(key))  # its thread is done with it, or never started

    def _claim(self, claims: _Claims, key: Any) -> None:
        worker = self.worker
        ts = worker.state.tasks.get(key)
        spec: Any = getattr(ts, "run_spec", None)
        func: Any = getattr(spec, "func", None)
        if (getattr(func, "__module__", None), getattr(func, "__name__", None)) not in _TASKS:
            return
        args = spec.args
        if len(args) < 3 or not isinstance(args[-1], str):
            return
        if func.__name__ == "run_chained" and not _ancestor_succeeded(worker, ts):
            return  # it runs nothing: nothing to claim
        job, attempt_key, token = args[-3:]
        started = started_event(job, attempt_key, worker.address)
        local = self.local.handlers.get(HANDLER) if self.local is not None else None
        if local is not None:  # the scheduler runs on this very loop: ask it without a message
            try:
                granted = local(key=token, topic=self.topic, event=started)
            except Exception:  # the thread claims for itself (and fails there)
                log.debug("claim ahead of %s not asked", key, exc_info=True)
                return
            claims.add(str(key), token)
            claims.granted(token=token, granted=granted)
            return
        msg = {"op": CLAIM_OP, "token": token, "topic": self.topic, "event": started}
        try:
            worker.batched_stream.send(msg)
        except Exception:  # a closed stream: the thread claims for itself (and fails there)
            log.debug("claim ahead of %s not sent", key, exc_info=True)
            return
        claims.add(str(key), token)  # the answer cannot come before: it is read on this loop


def _scheduler_on_loop(worker: Any) -> Any:
    """The worker's scheduler if it lives in this process and runs on the worker's own event
    loop (an in-process cluster of threads), else None."""
    from distributed.scheduler import Scheduler

    address = getattr(worker.scheduler, "address", None)
    for scheduler in list(Scheduler._instances):
        if scheduler.address == address and scheduler.loop is worker.loop:
            return scheduler
    return None


def started_event(spec: Any, key: str, worker: str) -> dict[str, Any]:
    """The attempt's ``started`` event, which the scheduler publishes as it grants the claim."""
    return {
        "event": "started",
        "key": key,
        "run_id": spec.run_id,
        "attempt": spec.attempt,
        "start": datetime.now(UTC).isoformat(),
        "worker": str(worker),
    }


def _ancestor_succeeded(worker: Any, ts: Any) -> bool:
    from planner.live.worker import JobOutcome
    from registry.lifecycle import RunStatus

    try:
        (dependency,) = ts.dependencies
        outcome = worker.data[dependency.key]
    except (ValueError, KeyError):
        return False
    return isinstance(outcome, JobOutcome) and outcome.status is RunStatus.SUCCEEDED


def await_grant(worker: Any, token: str) -> bool | None:
    """On the task's thread: the scheduler's answer to the claim sent ahead for ``token``, or
    None if none was sent (the thread then claims for itself). While the worker is closing no
    answer may come: False then (the task is not run)."""
    claims: _Claims | None = getattr(worker, _STATE, None)
    grant = claims.get(token) if claims is not None else None
    if claims is None or grant is None:
        return None
    try:
        while not grant.ready.wait(POLL_S):
            if worker.status not in WORKER_ANY_RUNNING:
                return False
        return grant.answer
    finally:
        claims.drop(token)
