"""At most once per attempt: Dask may run a task again, the planner's attempts never.

Dask re-runs a task when the worker that held its result dies while a client still wants that
result (the task is recomputed elsewhere), and it may reschedule work of a worker that left. For
a planner that would be a second execution of an attempt whose work already happened. So the
worker-side wrapper first *claims* the attempt on the scheduler — its key plus a token unique to
the submission, so that another planner's (or a test's) attempt of the same name is not taken for
a re-run: a handler installed on the scheduler (``install``) keeps the tokens claimed so far and
answers True only to the first claim.
A second execution finds the key claimed and raises ``AttemptAlreadyRan`` without running the
job; the planner then uses the outcome the first execution reported, if it did, or records the
attempt failed and retries it by policy as a *new* attempt.

A chained attempt (see ``planner.core.chaining``) that the planner withdraws is marked on the
scheduler too, by its token (or, after a restart, by its key and a time: every submission of
that key made before then): its claim is then refused, so it never runs — unless it was claimed
first, which ``withdraw`` reports (too late: it runs as if started before the withdrawal).

The claimed set lives in the scheduler's memory (bounded: the oldest of ``MAX_CLAIMS`` keys are
forgotten) and survives planner restarts on a remote scheduler. One round trip to the scheduler
per attempt (none on an in-process cluster of threads, whose worker calls the handler), sent
from the worker's event loop as it decides to run the task (``planner.live.claim_ahead``) or,
failing that, from the task's thread; the claim also carries
the attempt's ``started`` event, which the scheduler publishes to the planner when (and only
when) it grants the claim, so a start costs one message from the worker, not two.

The handlers' state is kept apart per handler name: a scheduler that served an earlier planner
version keeps that version's claims under its old name.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from typing import Any

from distributed import Client
from distributed.utils import sync

from planner.live.claim_ahead import CLAIM_OP, GRANT_OP, HANDLER, ClaimAhead

WITHDRAW = "planner_withdraw_attempts_3"
#: "every submission so far and later": withdrawing a key for good
FOREVER = 2**63
#: keys remembered on the scheduler; far more than attempts can be in flight or in doubt at once
MAX_CLAIMS = 200_000
#: the client name under which Dask's ``fire_and_forget`` keeps tasks wanted until they end
FIRE_AND_FORGET = "fire-and-forget"


class AttemptAlreadyRan(RuntimeError):
    """Dask started an attempt a second time (its first worker died); it was not run again."""


def _install(hold: bool = False, dask_scheduler: Any = None) -> bool:
    if HANDLER in dask_scheduler.handlers:
        return False
    claimed: OrderedDict[str, None] = OrderedDict()  # tokens claimed, and tokens withdrawn
    first: OrderedDict[str, int] = OrderedDict()  # attempt key -> oldest submission claimed
    withdrawn: OrderedDict[str, int] = OrderedDict()  # attempt key -> withdrawn before this

    def remember(book: OrderedDict[str, Any], item: str, value: Any = None) -> None:
        book[item] = value
        if len(book) > MAX_CLAIMS:
            book.popitem(last=False)

    def claim(
        comm: Any = None, key: str = "", topic: str = "", event: dict[str, Any] | None = None
    ) -> bool:
        attempt, submitted = split_token(key)
        if key in claimed or submitted < withdrawn.get(attempt, -1):
            return False
        remember(claimed, key)
        if attempt not in first or submitted < first[attempt]:
            remember(first, attempt, submitted)
        if event is not None:  # the start, announced only once it is certain
            dask_scheduler.log_event(topic, event)
        if hold and attempt in dask_scheduler.tasks:
            # a remote planner that dies between its submission and its fire_and_forget would
            # take the attempt with it: once begun, it is kept until it ends (and no longer)
            dask_scheduler.client_desires_keys(keys=[attempt], client=FIRE_AND_FORGET)
        return True

    def withdraw(
        comm: Any = None, tokens: list[str] | None = None, keys: dict[str, int] | None = None
    ) -> list[str]:
        """Make sure the given submissions, and every submission of ``keys`` made before the
        time given with each, never run if not claimed yet; returns those already claimed."""
        late = [t for t in tokens or () if t in claimed]
        for token in tokens or ():
            remember(claimed, token)
        for attempt, before in (keys or {}).items():
            if first.get(attempt, before) < before:
                late.append(attempt)
            else:
                remember(withdrawn, attempt, max(before, withdrawn.get(attempt, -1)))
        return late

    def claim_ahead(
        worker: str = "", token: str = "", topic: str = "", event: Any = None, **_: Any
    ) -> None:
        """A claim sent ahead over a worker's stream (``planner.live.claim_ahead``)."""
        granted = claim(key=token, topic=topic, event=event)
        dask_scheduler.worker_send(worker, {"op": GRANT_OP, "token": token, "granted": granted})

    dask_scheduler.handlers[HANDLER] = claim
    dask_scheduler.stream_handlers[CLAIM_OP] = claim_ahead
    dask_scheduler.handlers[WITHDRAW] = withdraw
    return True


def new_token(key: str, unique: str | None = None) -> str:
    """A submission's token: the attempt key, when (ns), and a part unique to the submission
    (random unless given)."""
    return f"{key}/{time.time_ns()}/{unique or uuid.uuid4().hex}"


def split_token(token: str) -> tuple[str, int]:
    """(attempt key, submission time in ns; -1 if the token carries none)."""
    parts = token.rsplit("/", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return parts[0], int(parts[1])
    return token.split("/", 1)[0], -1


def install(client: Client, topic: str, *, hold: bool = False) -> None:
    """Install the claim handlers on the client's scheduler (once; later calls keep its keys),
    and the plugin that sends claims ahead on its workers, starts announced under ``topic``.
    ``hold`` (a remote scheduler): a granted claim also makes the scheduler keep its task as
    ``fire_and_forget`` does, so a planner that dies right after a submission loses nothing
    that began."""
    client.run_on_scheduler(_install, hold=hold)
    client.register_plugin(ClaimAhead(topic), name=ClaimAhead.name)


def withdraw(client: Client, tokens: list[str], keys: dict[str, int] | None = None) -> set[str]:
    """Chained submissions that must not run (by token, or by attempt key for submissions made
    before the given time, as after a restart). Those not yet claimed never will be; returns
    the tokens and keys claimed already (too late: they run, or ran)."""
    if not tokens and not keys:
        return set()
    answer = client.run_on_scheduler(_withdraw, tokens=tokens, keys=keys or {}, client=client.id)
    return set(answer)


def _withdraw(
    tokens: list[str], keys: dict[str, int], client: str, dask_scheduler: Any = None
) -> list[str]:
    late = list(dask_scheduler.handlers[WITHDRAW](tokens=tokens, keys=keys))
    # the withdrawn tasks are forgotten too, even those fire_and_forget keeps wanted: their
    # key must not linger for a later submission of the same name
    gone = {split_token(t)[0] for t in tokens if t not in late} | {k for k in keys if k not in late}
    if gone:
        try:
            dask_scheduler.stimulus_cancel(
                keys=sorted(gone), client=client, force=True, reason="withdrawn", msg="withdrawn"
            )
        except Exception:  # a key already on its way out: its claim is refused all the same
            logging.getLogger(__name__).debug("cancel of %s failed", gone, exc_info=True)
    return late


def claim(worker: Any, key: str, topic: str = "", event: dict[str, Any] | None = None) -> bool:
    """On a worker's task thread: True if this is the first execution of ``key``; then the
    scheduler logs ``event`` (if given) under ``topic``."""
    rpc = getattr(worker.scheduler, HANDLER)
    return bool(sync(worker.loop, rpc, key=key, topic=topic, event=event))
