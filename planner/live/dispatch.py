"""Dask side of the live driver: submit attempts, turn completions into events, re-attach runs.

Threads: Dask calls done-callbacks and topic handlers on its own event-loop thread. Here they do one
thing — put a message on ``inbox`` and set ``wake`` — so the planner loop (another thread) reacts at
once while Dask's thread never touches the store or the core.

Keys: one Dask key per attempt, ``<process>-<seq>-a<attempt>`` (``planner.live.keys``), so the Dask
dashboard groups tasks per process; submitted with ``pure=False`` and ``retries=0`` (the planner
owns retries and their delays).

The tasks Dask runs for attempts, and their events, are in ``planner.live.tasks``.

Restart safety: with a remote scheduler every attempt is also ``fire_and_forget``-ed (and held by
the scheduler as it grants the attempt's claim, ``once.install(hold=True)``), so a dead planner
does not cancel work, and ``started``/``finished`` events are logged under the
``dask-planner`` topic (the start by the scheduler as it grants the attempt's claim, the end by the
worker-side wrapper). A restarted planner re-attaches to attempts the scheduler still runs and
reads the outcome of those that finished while it was down from the scheduler's event log (which
keeps the last ``distributed.admin.low-level-log-length`` events per topic).

Cancel: ``request_cancel`` calls ``planner.live.worker.cancel_attempt`` on every worker with
``Client.run`` (from a thread of its own, so a slow worker does not hold up the loop; the workers
run it on their event loops at once). The worker kills a command's processes or sets a callable's
``ctx.cancelled`` and the attempt ends, as ``cancelled``, when its work really has: its slot stays
busy until its ``Done`` arrives. An attempt not yet started is also cancelled in Dask. Nothing is
sent while no cancel happens. A callable past its timeout sends ``overdue``: its thread still runs,
so the loop's backstop for a silent worker (``lingering``) must not free its slot.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from distributed import Client, Future, fire_and_forget

from planner.core.events import ConditionAnswered
from planner.live import once
from planner.live.comms import quicken
from planner.live.keys import attempt_key, attempt_of_key
from planner.live.log_stream import LOG_TOPIC, LogChunk, chunk_from_event
from planner.live.tasks import (
    TOPIC,
    outcome_from_message,
    run_attempt,
    run_chained,
)
from planner.live.worker import JobOutcome, JobSpec, cancel_attempt
from registry.lifecycle import RunStatus
from registry.records import ErrorInfo

log = logging.getLogger(__name__)

LOG_FETCH_TIMEOUT_S = 10.0  # the most the loop waits for a longer log from the worker


@dataclasses.dataclass(frozen=True, slots=True)
class Started:
    run_id: str
    attempt: int
    start: datetime
    worker: str


@dataclasses.dataclass(frozen=True, slots=True)
class Done:
    run_id: str
    attempt: int
    future: Future


class Dispatcher:
    """Submits attempts to Dask and reports their progress through ``inbox``."""

    def __init__(self, client: Client, *, remote: bool) -> None:
        self.client = client
        self.remote = remote
        #: what other threads report to the loop: Dask's starts and ends, condition answers
        self.inbox: queue.SimpleQueue[Started | Done | ConditionAnswered | LogChunk] = (
            queue.SimpleQueue()
        )
        self.wake = threading.Event()
        self.futures: dict[tuple[str, int], Future] = {}
        self.finished: dict[str, dict[str, Any]] = {}  # outcome messages by key, not yet taken
        self.reattached: dict[str, tuple[str, int]] = {}  # keys claimed after a restart
        self.started: set[str] = set()  # keys a worker said it started
        self.overdue: set[str] = set()  # keys of callables past their timeout, still running
        self.cancelling: dict[str, str] = {}  # key -> reason, for keys asked to cancel
        self.tokens: dict[str, str] = {}  # key -> token, for chained attempts (withdrawals)
        self.instance = uuid.uuid4().hex  # with a counter: a token per submission, no syscall
        self.submissions = itertools.count()
        client.subscribe_topic(TOPIC, self._on_event)
        client.subscribe_topic(LOG_TOPIC, self._on_log)
        quicken(client)
        once.install(client, TOPIC, hold=remote)

    # Dask's thread ------------------------------------------------------------------------------

    def _on_event(self, event: tuple[float, Any]) -> None:
        msg = event[1]
        if isinstance(msg, dict) and msg.get("event") == "finished":
            # the outcome travels with the event: no gather round trip when the future completes
            self.finished[msg["key"]] = msg
            self._ended(msg)
        elif isinstance(msg, dict) and msg.get("event") == "overdue":
            self.overdue.add(msg["key"])
        elif isinstance(msg, dict) and msg.get("event") == "started":
            if msg["key"] in self.started:  # a re-run or a replayed event: the first start stands
                log.warning("attempt %s reported started again (ignored)", msg["key"])
                return
            self.started.add(msg["key"])
            self.inbox.put(
                Started(
                    run_id=msg["run_id"],
                    attempt=int(msg["attempt"]),
                    start=datetime.fromisoformat(msg["start"]),
                    worker=str(msg["worker"]),
                )
            )
            self.wake.set()

    def _ended(self, msg: Mapping[str, Any]) -> None:
        """An attempt reported its end: the loop may take it now. The event comes a few ms
        before the future completes (Dask marks the task done on the scheduler, then tells the
        client); that future's own ``Done`` then finds the attempt taken and is ignored. A log
        too long for the event waits for the future, whose result holds all of it."""
        if msg.get("log_cut"):
            return
        try:
            run_id, attempt = attempt_of_key(msg["key"])
        except ValueError:  # not an attempt's key
            return
        future = self.futures.get((run_id, attempt))
        if future is not None:  # ours, and not taken yet
            self.inbox.put(Done(run_id, attempt, future))
            self.wake.set()

    def _on_log(self, event: tuple[float, Any]) -> None:
        chunk = chunk_from_event(event)
        if chunk is not None:  # written by the loop with its next turn; no need to wake it
            self.inbox.put(chunk)

    def _on_done(self, run_id: str, attempt: int, future: Future) -> None:
        self.inbox.put(Done(run_id, attempt, future))
        self.wake.set()

    # planner loop's thread ----------------------------------------------------------------------

    def submit_many(self, specs: Sequence[tuple[JobSpec, Mapping[str, float]]]) -> None:
        """Hand many attempts to Dask, in one ``Client.map`` call per set of resources (one
        graph update for the scheduler instead of one per attempt); Dask keeps their order."""
        quicken(self.client)
        groups: dict[tuple[tuple[str, float], ...], list[JobSpec]] = {}
        for spec, resources in specs:
            groups.setdefault(tuple(sorted(resources.items())), []).append(spec)
        for resource_set, group in groups.items():
            if len(group) == 1:
                self.submit(group[0], resources=dict(resource_set))
                continue
            keys = [attempt_key(spec.run_id, spec.attempt) for spec in group]
            tokens = [self._token(key) for key in keys]
            futures = self.client.map(
                run_attempt,
                group,
                keys,
                tokens,
                key=keys,
                pure=False,
                retries=0,
                resources=dict(resource_set) or None,
            )
            for spec, future in zip(group, futures, strict=True):
                self._watch(spec.run_id, spec.attempt, future)
                if self.remote:
                    fire_and_forget(future)

    def submit_chained(
        self, spec: JobSpec, after: str, *, resources: Mapping[str, float] | None = None
    ) -> bool:
        """Hand Dask an attempt to run when run ``after``'s attempt in flight ends (see
        ``run_chained``). False if that attempt is not in flight here (nothing submitted)."""
        ancestor = next((f for (run_id, _), f in self.futures.items() if run_id == after), None)
        if ancestor is None:
            return False
        key = attempt_key(spec.run_id, spec.attempt)
        self.tokens[key] = self._submit(run_chained, spec, resources, ancestor)
        return True

    def submit_ahead(self, spec: JobSpec, *, resources: Mapping[str, float] | None = None) -> None:
        """Hand Dask the attempt the core decided for the next slot to free: Dask starts it on
        the first worker thread that frees (``planner.core.slot_ahead``); withdrawable as a
        chained attempt is."""
        key = attempt_key(spec.run_id, spec.attempt)
        self.tokens[key] = self._submit(run_attempt, spec, resources)

    def in_flight(self, run_id: str) -> bool:
        """An attempt of ``run_id`` is submitted and not yet taken back."""
        return any(r == run_id for r, _ in self.futures)

    def withdraw(self, attempts: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        """Withdraw chained attempts: those Dask has not begun never will be, and are forgotten
        here. Returns the ones it had begun (too late: they run as usual). Attempts submitted
        by an earlier planner (no token here) are withdrawn by key: every submission so far."""
        keys = {attempt_key(run_id, attempt): (run_id, attempt) for run_id, attempt in attempts}
        tokens = {self.tokens[k]: k for k in keys if k in self.tokens}
        # an earlier planner's (another host's clock): every submission of the key, for good
        before = {k: once.FOREVER for k in keys if k not in self.tokens}
        answer = once.withdraw(self.client, list(tokens), before)
        late = {tokens.get(item, item) for item in answer}
        for key, attempt in keys.items():
            if key in late:
                continue
            future = self.futures.pop(attempt, None)
            if future is not None:
                future.cancel()
            self._forget(key)
        return {keys[k] for k in late}

    def submit(self, spec: JobSpec, *, resources: Mapping[str, float] | None = None) -> str:
        self._submit(run_attempt, spec, resources)
        return attempt_key(spec.run_id, spec.attempt)

    def _submit(
        self, task: Any, spec: JobSpec, resources: Mapping[str, float] | None, *before: Any
    ) -> str:
        """Submit one attempt as ``task(*before, spec, key, token)``; returns its token."""
        key = attempt_key(spec.run_id, spec.attempt)
        token = self._token(key)  # this submission; a Dask re-run repeats it
        future = self.client.submit(
            task,
            *before,
            spec,
            key,
            token,
            key=key,
            pure=False,
            retries=0,
            resources=dict(resources) if resources else None,
        )
        self._watch(spec.run_id, spec.attempt, future)
        if self.remote:
            fire_and_forget(future)
        return token

    def _token(self, key: str) -> str:
        """A token unique to one submission of ``key`` (see ``planner.live.once``)."""
        return once.new_token(key, f"{self.instance}-{next(self.submissions)}")

    def _watch(self, run_id: str, attempt: int, future: Future) -> None:
        self.futures[(run_id, attempt)] = future
        future.add_done_callback(lambda f: self._on_done(run_id, attempt, f))

    def cancel(self, run_id: str, attempt: int) -> bool:
        """Give up on an attempt in flight: its completion will be ignored (see request_cancel)."""
        future = self.futures.pop((run_id, attempt), None)
        if future is None:
            return False
        future.cancel()
        self._forget(attempt_key(run_id, attempt))
        return True

    def request_cancel(
        self, run_id: str, attempt: int, reason: str = "cancelled by an operator"
    ) -> bool:
        """Stop an attempt's work; its ``Done`` follows once the work ended. False if unknown."""
        future = self.futures.get((run_id, attempt))
        if future is None:
            return False
        key = attempt_key(run_id, attempt)
        self.cancelling[key] = reason
        if key not in self.started:  # still waiting in Dask: drop it there (a Done follows)
            future.cancel()
        threading.Thread(
            target=self._signal_cancel, args=(key, reason), name=f"cancel-{key}", daemon=True
        ).start()
        return True

    def _signal_cancel(self, key: str, reason: str) -> None:
        try:
            self.client.run(cancel_attempt, key, reason, on_error="ignore")
        except Exception:  # the cluster is going away; its workers' guardians clean up
            log.warning("could not reach the workers to cancel %s", key, exc_info=True)

    def lingering(self, run_id: str, attempt: int) -> bool:
        """A callable past its timeout whose thread still runs: it holds its slot until it ends."""
        return (run_id, attempt) in self.futures and attempt_key(run_id, attempt) in self.overdue

    def take(self, done: Done) -> JobOutcome | None:
        """The outcome of a completed attempt; None if it was cancelled by us (already settled)."""
        if self.futures.get((done.run_id, done.attempt)) is not done.future:
            return None
        del self.futures[(done.run_id, done.attempt)]
        key = attempt_key(done.run_id, done.attempt)
        msg = self.finished.pop(key, None)
        reason = self.cancelling.get(key)
        self._forget(key)
        if msg is not None:  # what the (first) execution reported, even if Dask re-ran it
            outcome = outcome_from_message(msg)
            if msg.get("log_cut") and done.future.status == "finished":
                outcome = dataclasses.replace(outcome, log=_whole_log(done.future) or outcome.log)
            return outcome
        if reason is not None and done.future.status == "cancelled":  # dropped before it started
            now = datetime.now(UTC)
            error = ErrorInfo(type="Cancelled", message=f"{reason} before it started")
            return JobOutcome(
                status=RunStatus.CANCELLED, start=now, end=now, worker="unknown", error=error
            )
        return outcome_of(done.future)

    def _forget(self, key: str) -> None:
        self.tokens.pop(key, None)
        self.finished.pop(key, None)
        self.started.discard(key)
        self.overdue.discard(key)
        self.cancelling.pop(key, None)

    def threads_and_resources(self) -> tuple[int, tuple[dict[str, float], ...]]:
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
        resources = tuple(dict(w.get("resources") or {}) for w in workers.values())
        return threads, resources

    def reattach(self, keys: Mapping[str, tuple[str, int]]) -> dict[str, JobOutcome | None]:
        """For attempts recorded as in flight by an earlier planner: re-attach those the cluster
        still runs; return the outcome of those that finished meanwhile, and None for the lost."""
        finished: dict[str, JobOutcome] = {}
        for _, msg in self.client.get_events(TOPIC):
            if isinstance(msg, dict) and msg.get("event") == "finished" and msg["key"] in keys:
                finished[msg["key"]] = outcome_from_message(msg)
        unknown = [k for k in keys if k not in finished]
        alive = self.client.run_on_scheduler(_known_keys, keys=unknown) if unknown else []
        results: dict[str, JobOutcome | None] = dict(finished)
        for key in unknown:
            if key in alive:
                run_id, attempt = keys[key]
                future: Future = Future(key, self.client)
                # A Future built from a key does not tell the scheduler we want the result; this
                # is the message fire_and_forget and submit send, naming our client.
                self.client._send_to_scheduler(
                    {"op": "client-desires-keys", "keys": [key], "client": self.client.id}
                )
                self._watch(run_id, attempt, future)
                self.reattached[key] = (run_id, attempt)
                self.started.add(key)  # a cancel must reach its worker, not drop the future
            else:
                results[key] = None
        return results

    def check_reattached(self) -> None:
        """An attempt that finished between our look at the scheduler and our claim on its key
        is forgotten by the scheduler, so its future never completes; its finished event does."""
        for key, (run_id, attempt) in list(self.reattached.items()):
            future = self.futures.get((run_id, attempt))
            if future is None or future.done():
                del self.reattached[key]
            elif key in self.finished:
                del self.reattached[key]
                self.inbox.put(Done(run_id, attempt, future))
                self.wake.set()


def _known_keys(keys: list[str], dask_scheduler: Any = None) -> list[str]:
    tasks = dask_scheduler.tasks if dask_scheduler is not None else {}
    return [k for k in keys if k in tasks and tasks[k].state not in ("forgotten", "erred")]


def _whole_log(future: Future) -> str | None:
    """A long log from the task's result: the one round trip it costs, bounded in time; on
    any trouble (the worker holding the result left) the message's tail stands."""
    try:
        result = future.result(timeout=LOG_FETCH_TIMEOUT_S)
    except Exception as exc:
        log.warning("kept the tail of a long log only (%s): %s", future.key, exc)
        return None
    return result.log if isinstance(result, JobOutcome) else None


def outcome_of(future: Future) -> JobOutcome:
    """Turn a finished future into an outcome; Dask-level failures become failed attempts."""
    now = datetime.now(UTC)
    if future.status == "finished":
        result = future.result()
        assert isinstance(result, JobOutcome)
        return result
    if future.status == "cancelled":
        error = ErrorInfo(type="CancelledError", message="the attempt was cancelled by Dask")
    else:
        try:
            exc = future.exception()
        except Exception as lookup_error:  # the scheduler lost the task altogether
            exc = lookup_error
        error = ErrorInfo(type=type(exc).__name__, message=str(exc)[:500])
    return JobOutcome(status=RunStatus.FAILED, start=now, end=now, worker="unknown", error=error)
