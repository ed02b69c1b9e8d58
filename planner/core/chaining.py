"""Chained dispatch: decide a successor's run before its running ancestor ends.

Once the allocation of a step is done, for each run in flight ``P`` the core asks: *if ``P``
succeeded now, which run would take the slot it frees?* It answers with the same rules the
allocation uses, on a hypothetical state (``P``'s flight ended successfully; nothing else
changed). When the answer is a new run of a successor ``D`` of ``P`` — ``P`` is ``D``'s only
stale ancestor, ``D`` would rank before every other run that could take the slot, and capacity
would admit it — the step hands that run to the driver *ahead* (``Step.chained``, with
``StartRun.after`` naming ``P``'s run). The driver records it ``pending`` and submits it to Dask
depending on ``P``'s task, so Dask starts it the moment ``P`` ends, without a round trip through
the planner.

Every later step checks each chain again against the state of that moment. A change that would
make another decision — a hold, a cancel, a registry change, a higher-ranked arrival, a trigger,
a time gate (the hypothetical evaluation's next check is a wake-up) — withdraws it
(``Step.withdrawn``): the driver makes sure Dask will not run it and deletes its record, so it
leaves no attempt and is not counted. When ``P`` ends:

- it succeeded: the chained run starts, at that instant, with the values it was handed over with
  (``StartRun.ahead``: the driver does not submit it again), before the rest of the allocation —
  which, when the prediction holds, is exactly the start the allocation would have made;
- otherwise it is withdrawn (the worker-side wrapper does not run it either).

A withdrawal can come too late — ``P`` ended and Dask began the chained run before the driver's
withdrawal reached the scheduler. The driver then reports ``ChainKept`` before any other event,
and the chain stands (it runs, and is recorded like any run started just before the change).

Chains are only made where the prediction can be exact: no reserved processes (their holds
depend on time estimates), and a successor without a pool or resources (two ancestors ending at
once could otherwise start two chained runs that one pool cannot hold) and without a condition
(asked only once nothing else holds the successor back). The search is bounded:
at most ``SUCCESSORS_SCANNED`` successors (past that the core simply does not chain), and waiting
candidates are compared one capacity group (pool, resources) at a time, by the group's best.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from planner.core import capacity
from planner.core.book import ProcessBook
from planner.core.candidates import Group
from planner.core.events import Code, Reason, StartKind, StartRun, TriggerRequested
from planner.core.ranking import rank_key
from planner.core.readiness import ancestor_problems, fire_to_run
from planner.core.reservation import Hold
from planner.core.state import Flight, ProcState, Readiness
from registry.lifecycle import RunStatus
from registry.model import ProcessDef

#: successors of a running process looked at for a chain
SUCCESSORS_SCANNED = 256
#: "ready since" for runs that become candidates when an ancestor ends (after every waiting one)
_LATER = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunPlan:
    """What the next new run of a process would be: kind, scheduled time, params, trigger."""

    kind: StartKind
    scheduled: datetime
    params: dict[str, Any] = field(default_factory=dict)
    trigger: TriggerRequested | None = None  # the pending trigger it satisfies

    @property
    def request_id(self) -> int | None:
        return None if self.trigger is None else self.trigger.request_id

    def same(self, other: RunPlan) -> bool:
        """The same run: a single run's scheduled time is when it was decided, so it differs
        from one step to the next and does not count."""
        if (self.kind, self.params, self.trigger) != (other.kind, other.params, other.trigger):
            return False
        return self.kind is StartKind.SINGLE or self.scheduled == other.scheduled


def next_run(ps: ProcState, r: Readiness, now: datetime) -> RunPlan:
    """The new run ``ps`` would start at ``now`` under evaluation ``r`` (not a retry); pure."""
    params = dict(ps.definition.params)
    # the next run that starts satisfies a pending trigger, whatever started it: a trigger is
    # never starved by the process's own scheduled runs
    trigger = r.trigger if r.kind is StartKind.TRIGGER else None
    if trigger is None and ps.triggers:
        # one due now, and not a backfill's (those stand for their own fire time)
        due = [x for x in ps.triggers if x.due_at(now) and x.scheduled is None]
        trigger = next((x for x in due if not x.force), due[0] if due else None)
    if trigger is not None and trigger not in ps.triggers:
        trigger = None
    if trigger is not None:
        params.update(trigger.params)
    scheduled = r.scheduled if r.kind is StartKind.TRIGGER else now
    if r.kind is StartKind.FIRE:
        # the evaluation may be older than now (a candidate waiting for a slot): fires that
        # passed meanwhile collapse into this run too (missed: latest/skip)
        scheduled = fire_to_run(ps, now)
    return RunPlan(kind=r.kind, scheduled=scheduled, params=params, trigger=trigger)


@dataclass(slots=True, kw_only=True)
class Chain:
    """A run handed to the driver ahead, to start when run ``after`` succeeds."""

    start: StartRun
    after: str  # run id of the running ancestor
    plan: RunPlan
    readiness: Readiness  # the hypothetical evaluation it was decided on
    definition: ProcessDef  # as handed over to Dask: a change withdraws the chain
    kept: bool = False  # Dask began it before a withdrawal arrived: it stands, whatever changes
    check_at: datetime | None = None  # when a time rule may end it (the evaluation's next check)
    woken: tuple[datetime, int] | None = None  # the wake-up entry pushed for check_at


class Chaining(ProcessBook):
    """The chain book of the core (``Planner`` builds on it)."""

    chaining = True
    _chains: dict[str, Chain]  # by the run id they wait for
    _chained: dict[str, Chain]  # by their own run id
    _withdrawn: dict[str, Chain]  # withdrawn in the last step: restored by ChainKept

    def _chain_book(self) -> None:
        self._chains, self._chained, self._withdrawn = {}, {}, {}

    def chains(self) -> list[tuple[str, str]]:
        """(chained run id, the run id it waits for), for pages and tests."""
        return sorted((c.start.run_id, c.after) for c in self._chains.values())

    # -- events ---------------------------------------------------------------------------------

    def _chain_kept(self, run_id: str) -> Chain | None:
        """The driver's withdrawal of ``run_id`` came too late: it stands. Returned to start
        now if the run it waited for has already ended (it succeeded: Dask ran the chain)."""
        chain = self._withdrawn.pop(run_id, None)
        if chain is None:
            return None
        chain.kept = True
        if chain.after in self.run_index and chain.after not in self._chains:
            self._chains[chain.after] = chain
            self._chained[run_id] = chain
            return None
        return chain

    def _withdrawals_final(self) -> None:
        """The last step's withdrawals that the driver did not report too late are final. Their
        run numbers are not given back: the withdrawn submission's key may still be known to a
        remote scheduler, and a new run must never share it."""
        self._withdrawn = {}

    def _recheck_due_chains(
        self, now: datetime, ended: Mapping[str, datetime], withdrawn: list[str]
    ) -> None:
        """Before a step's events: chains a time rule may have ended by ``now`` are checked at
        ``now`` first, so an ancestor that ends at or after the instant a gate closes does not
        start a run the rules no longer allow. ``ended``: when the runs that succeed in this
        step ended; a chain whose ancestor ended before its check time stands (Dask began it
        while the rules allowed it)."""
        for after, chain in list(self._chains.items()):
            if chain.kept or chain.check_at is None or chain.check_at > now:
                continue
            if after in ended and ended[after] < chain.check_at:
                continue
            best = self._predict(after, now)
            if not self._still(chain, best):
                self._withdraw(chain, withdrawn)
            elif best is not None:
                chain.check_at = best[1].next_check

    def _ancestor_ended(self, run_id: str, status: RunStatus, withdrawn: list[str]) -> Chain | None:
        """The chain waiting for ``run_id``: returned to start if it succeeded, else withdrawn."""
        chain = self._chains.pop(run_id, None)
        if chain is None:
            return None
        del self._chained[chain.start.run_id]
        if status is RunStatus.SUCCEEDED:
            return chain
        self._withdraw(chain, withdrawn)
        return None

    def _withdraw(self, chain: Chain, withdrawn: list[str]) -> None:
        self._chains.pop(chain.after, None)
        self._chained.pop(chain.start.run_id, None)
        self._withdrawn[chain.start.run_id] = chain  # until the driver says it was in time
        withdrawn.append(chain.start.run_id)

    # -- after the allocation -------------------------------------------------------------------

    def _revise_chains(self, now: datetime, withdrawn: list[str]) -> list[StartRun]:
        """Withdraw chains the state no longer supports; chain what can be chained now."""
        for after, chain in list(self._chains.items()):
            if chain.kept:
                continue
            best = self._predict(after, now) if self.chaining else None
            if best is None or not self._still(chain, best):
                self._withdraw(chain, withdrawn)
                continue
            chain.check_at = best[1].next_check
            if chain.check_at is not None and chain.woken != (
                chain.check_at,
                best[0].check_version,
            ):
                self._wake(chain.check_at, best[0])  # again: re-evaluations void older entries
                chain.woken = (chain.check_at, best[0].check_version)
        if not self.chaining or self.reserved:
            return []
        chained: list[StartRun] = []
        # one chain per process; none for a process withdrawn in this step (a report that the
        # withdrawal came too late may follow)
        busy = {c.start.process for c in (*self._chains.values(), *self._withdrawn.values())}
        waiting = {c.after for c in self._withdrawn.values()}  # may yet be reported kept
        for after, name in list(self.run_index.items()):
            if after in self._chains or after in waiting or name not in self.states:
                continue
            best = self._predict(after, now)
            if best is None or best[0].name in busy:
                continue
            ps, r, plan = best
            start = handed_over(ps, plan, now, after)
            chain = Chain(
                start=start,
                after=after,
                plan=plan,
                readiness=r,
                definition=ps.definition,
                check_at=r.next_check,
            )
            self._chains[after] = chain
            self._chained[start.run_id] = chain
            busy.add(ps.name)
            chained.append(start)
            if r.next_check is not None:  # a time gate may end the chain before its ancestor
                self._wake(r.next_check, ps)
                chain.woken = (r.next_check, ps.check_version)
        return chained

    @staticmethod
    def _still(chain: Chain, best: tuple[ProcState, Readiness, RunPlan] | None) -> bool:
        """The prediction still picks the chained run, as it was handed over (same definition:
        a registry change of the process withdraws it)."""
        if best is None:
            return False
        ps, _, plan = best
        return (
            ps.name == chain.start.process
            and ps.definition == chain.definition
            and plan.same(chain.plan)
        )

    def _wake(self, at: datetime, ps: ProcState) -> None:
        heapq.heappush(self.wakeups, (at, ps.check_version, ps.name))

    def _predict(self, after: str, now: datetime) -> tuple[ProcState, Readiness, RunPlan] | None:
        """The new run of a successor that would take the slot of run ``after`` if it succeeded
        now, when the rules make it certain; else None."""
        name = self.run_index.get(after)
        successors = self.dag.g.succ.get(name) if name is not None else None
        if not successors or len(successors) > SUCCESSORS_SCANNED or self.reserved:
            return None  # most runs in flight have no successor: this is the common exit
        anc = self.states.get(name) if name is not None else None
        flight = anc.flights.get(after) if anc is not None else None
        if anc is None or flight is None or anc.invalid is not None:
            return None
        near = [s for s in successors if self._waits_only_for(s, anc.name)]
        if not near:
            return None
        ranking = self.registry.ranking
        pool_use, resource_use = Counter(self.pool_use), Counter(self.resource_use)
        if flight.pool is not None:
            pool_use[flight.pool] -= 1
        resource_use.subtract(flight.resources)
        free = self.slots - self.in_flight + 1
        best: tuple[tuple[Any, ...], ProcState, Readiness] | None = None
        with _as_if_succeeded(anc, flight, now):
            rivals = [anc.name] if _may_run_again(anc) else []
            for cand_name in [*rivals, *near]:
                ps = self.states[cand_name]
                r = self._evaluate(ps, now)
                if not r.candidate or r.kind is StartKind.RETRY:
                    continue
                key = _later_key(ps, ranking)
                if best is None or key < best[0]:
                    best = (key, ps, r)
            if best is None or best[1].name == anc.name:
                return None
            key, ps, r = best
            d = ps.definition
            if d.pool is not None or d.resources or d.condition is not None:
                return None  # a condition is asked when nothing else holds it back: not ahead
            if self._blocker(ps, now, free, pool_use, resource_use, [], []) is not None:
                return None
            # a waiting candidate that ranks before it and could take the freed slot wins it:
            # the best of each group (pool, resources) that capacity would then admit
            for group in self.candidates.groups.values():
                if not group.keys or group.keys[0] >= key:
                    continue
                if self._need_blocker(group, pool_use, resource_use) is None:
                    return None
            plan = next_run(ps, r, now)
        return ps, r, plan

    def _waits_only_for(self, name: str, ancestor: str) -> bool:
        """``name`` waits for nothing but the ancestors rule, and only ``ancestor`` is stale."""
        ps = self.states.get(name)
        if ps is None or ps.candidate or ps.flights or ps.retrying or ps.invalid is not None:
            return False
        if len(ps.reasons) != 1 or ps.reasons[0].code is not Code.ANCESTORS:
            return False
        return ancestor_problems(ps, self.states) == [f"{ancestor} (running)"]

    # -- capacity (shared with the allocation) ---------------------------------------------

    def _blocker(
        self,
        ps: ProcState,
        now: datetime,
        free: int,
        pool_use: Counter[str],
        resource_use: Counter[str],
        holds: list[Hold],
        busy: list[datetime | None],
    ) -> Reason | None:
        return capacity.blocker(
            ps,
            now,
            free=free,
            slots=self.slots,
            registry=self.registry,
            tz=self.tz,
            pool_use=pool_use,
            resource_use=resource_use,
            workers=self.worker_resources,
            holds=holds,
            busy=busy,
        )

    def _need_blocker(
        self,
        group: Group,
        pool_use: Counter[str] | None = None,
        resource_use: Counter[str] | None = None,
    ) -> Reason | None:
        """What keeps a whole capacity group from starting (pool, resources), or None."""
        return capacity.need_blocker(
            group.pool,
            group.resources,
            registry=self.registry,
            pool_use=self.pool_use if pool_use is None else pool_use,
            resource_use=self.resource_use if resource_use is None else resource_use,
            workers=self.worker_resources,
        )

    # -- starting ---------------------------------------------------------------------------------

    def _new_flight(
        self, ps: ProcState, plan: RunPlan, now: datetime, run_id: str | None
    ) -> Flight:
        """The flight of a new run of ``ps`` under ``plan``; consumes its trigger."""
        d = ps.definition
        if plan.trigger is not None and plan.trigger in ps.triggers:
            ps.triggers.remove(plan.trigger)
        if plan.kind is StartKind.FIRE:
            ps.last_fire = plan.scheduled
            ps.next_fire_valid = False
        flight = Flight(
            run_id=run_id or ps.new_run_id(),
            attempt=1,
            scheduled=plan.scheduled,
            started=now,
            params=dict(plan.params),
            request_id=plan.request_id,
            pool=d.pool,
            resources=dict(d.resources),
        )
        self.run_index[flight.run_id] = ps.name
        return flight


def handed_over(ps: ProcState, plan: RunPlan, now: datetime, after: str | None) -> StartRun:
    """The new run of ``ps`` under ``plan``, decided at ``now`` and handed to Dask ahead
    (``after``: the run in flight whose success starts it; None: the next slot to free)."""
    return StartRun(
        run_id=ps.new_run_id(),
        process=ps.name,
        attempt=1,
        kind=plan.kind,
        scheduled=plan.scheduled,
        decided_at=now,
        params=plan.params,
        final_attempt=ps.definition.retries == 0,
        request_id=plan.request_id,
        after=after,
    )


def _may_run_again(ps: ProcState) -> bool:
    """Whether a success could leave ``ps`` a candidate at once (then it competes too)."""
    return ps.definition.recurrent or bool(ps.triggers) or ps.definition.max_active > 1


def _later_key(ps: ProcState, ranking: Any) -> tuple[Any, ...]:
    saved = ps.ready_since
    ps.ready_since = _LATER
    try:
        return rank_key(ps, ranking)
    finally:
        ps.ready_since = saved


@contextmanager
def _as_if_succeeded(ps: ProcState, flight: Flight, now: datetime) -> Iterator[None]:
    """``ps`` as it would be had ``flight`` just succeeded (restored afterwards)."""
    saved = (ps.flights, ps.last_success_end, ps.successes, ps.last_outcome, ps.last_end)
    ps.flights = {k: v for k, v in ps.flights.items() if k != flight.run_id}
    ps.last_success_end, ps.last_end = now, now
    ps.successes += 1
    ps.last_outcome = RunStatus.SUCCEEDED
    try:
        yield
    finally:
        ps.flights, ps.last_success_end, ps.successes, ps.last_outcome, ps.last_end = saved
