"""Slot-ahead dispatch: hand Dask the run that takes the next slot to free, before it frees.

Chained dispatch (``planner.core.chaining``) covers a successor taking its ancestor's slot. Most
slot hand-overs of a busy DAG go to a run that is already waiting instead. When every slot is
busy, the best waiting candidate ``W`` starts at the next end — whichever run ends and however
it ends — when the rules make that certain:

- ``W`` heads the candidate list (nothing waiting ranks before it), is not a retry, has no pool,
  resources, condition or time rule that could end its candidacy, and nothing is reserved;
- no run of ``W`` is in flight (its end could change ``W``; no ancestor of ``W`` is either: a
  running ancestor keeps ``W`` waiting);
- no end can bring a rival that ranks before ``W``: for every run in flight, neither the
  successors that wait for it alone nor its own process (a re-run, or a retry at once) would;
- no other run is handed over ahead (one per freed slot).

Then the step hands ``W`` over (``Step.chained`` with ``StartRun.after`` None). The driver
records it ``pending`` and submits it to Dask with no dependency; Dask starts it on the first
worker thread that frees. That is allowed only where Dask cannot run more at once than the
slots: the driver's own cluster (``slot_ahead``; not a remote one, which workers may join), with
as many threads as slots (with more slots, the runs in flight already wait in Dask's queue).
The next end of a run in flight starts ``W`` in the core, before the rest of the allocation:
exactly the start the allocation would have made. Every later step checks it again, and a
change that would make another decision withdraws it, as any chained run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from planner.core.chaining import (
    SUCCESSORS_SCANNED,
    Chain,
    Chaining,
    RunPlan,
    _later_key,
    _may_run_again,
    handed_over,
    next_run,
)
from planner.core.events import StartKind, StartRun
from planner.core.state import ProcState, Readiness
from registry.lifecycle import RunStatus

#: ``Chain.after`` of the run handed over for the next slot to free (no run id is empty)
NEXT_SLOT = ""


class SlotAhead(Chaining):
    """The slot-ahead book of the core (``Planner`` builds on it)."""

    #: the driver's word that Dask's threads are all there is (its own cluster, not a remote
    #: one that workers may join): with no more threads than slots, Dask cannot run more at once
    slot_ahead = False
    _slot: Chain | None

    def _slot_book(self) -> None:
        self._slot = None

    def chains(self) -> list[tuple[str, str]]:
        """(chained run id, the run id it waits for — empty: the next slot to free)."""
        out = super().chains()
        if self._slot is not None:
            out.append((self._slot.start.run_id, NEXT_SLOT))
        return sorted(out)

    # -- events ---------------------------------------------------------------------------------

    def _chain_kept(self, run_id: str) -> Chain | None:
        chain = self._withdrawn.get(run_id)
        if chain is None or chain.after != NEXT_SLOT:
            return super()._chain_kept(run_id)
        del self._withdrawn[run_id]
        chain.kept = True
        if self.in_flight < self.slots:
            return chain  # Dask began it on the slot an end freed: it starts now
        # the end that freed its thread is on its way: it starts with that end (none other
        # is handed over meanwhile: not while a withdrawal may yet be reported too late)
        self._slot = chain
        self._chained[run_id] = chain
        return None

    def _ancestor_ended(self, run_id: str, status: RunStatus, withdrawn: list[str]) -> Chain | None:
        chain = super()._ancestor_ended(run_id, status, withdrawn)
        if chain is None and self._slot is not None and self.in_flight < self.slots:
            chain, self._slot = self._slot, None  # the first slot to free is its
            self._chained.pop(chain.start.run_id, None)
        return chain

    def _withdraw(self, chain: Chain, withdrawn: list[str]) -> None:
        if chain is self._slot:
            self._slot = None
        super()._withdraw(chain, withdrawn)

    def _slot_taken(self, ps: ProcState, now: datetime) -> Chain | None:
        """The allocation starts ``ps`` in a free slot: the run handed over for the next slot,
        if it is ``ps``'s and still the same run (it starts as it was handed over)."""
        chain = self._slot
        if chain is None or chain.start.process != ps.name or ps.readiness is None:
            return None
        if not self._still(chain, (ps, ps.readiness, next_run(ps, ps.readiness, now))):
            return None
        self._slot = None
        self._chained.pop(chain.start.run_id, None)
        return chain

    def _withdraw_slot(self, withdrawn: list[str]) -> None:
        """A driver that stops starts nothing new: the run for the next slot is withdrawn."""
        if self._slot is not None and not self._slot.kept:
            self._withdraw(self._slot, withdrawn)

    # -- after the allocation -------------------------------------------------------------------

    def _slot_allowed(self) -> bool:
        """The driver allows it, and Dask has as many threads as there are slots: with fewer,
        Dask cannot start a run handed over ahead while every slot is busy; with more slots
        than threads the runs in flight already wait in Dask's queue, so one more ahead gains
        nothing. No threads known: a simulation, where slots are all there is."""
        threads = self.threads
        fits = threads is None or threads == self.slots
        return self.slot_ahead and self.chaining and fits

    def _revise_chains(self, now: datetime, withdrawn: list[str]) -> list[StartRun]:
        slot = self._slot
        if slot is not None and not slot.kept and not self._slot_still(slot, now):
            self._withdraw(slot, withdrawn)
        chained = super()._revise_chains(now, withdrawn) if self._slot is None else []
        if (
            self._slot is None
            and self._slot_allowed()
            and not self._chains  # one run ahead per freed slot: Dask would pick either
            and not self._withdrawn  # a withdrawal may yet be reported too late
        ):
            best = self._predict_slot(now)
            if best is not None:
                chained.append(self._hand_over(*best, now))
        return chained

    def _slot_still(self, slot: Chain, now: datetime) -> bool:
        return self._slot_allowed() and self._still(slot, self._predict_slot(now))

    def _hand_over(self, ps: ProcState, r: Readiness, plan: RunPlan, now: datetime) -> StartRun:
        start = handed_over(ps, plan, now, None)
        chain = Chain(
            start=start, after=NEXT_SLOT, plan=plan, readiness=r, definition=ps.definition
        )
        self._slot = chain
        self._chained[start.run_id] = chain
        return start

    @staticmethod
    def _again_at_once(ps: ProcState) -> bool:
        """Whether an end of a run of ``ps`` could leave it a candidate at once: a success
        (``_may_run_again``) or a failure retried without delay."""
        d = ps.definition
        retried = any(
            f.attempt <= d.retries and d.retry_wait(f.attempt) <= timedelta(0)
            for f in ps.flights.values()
        )
        return retried or _may_run_again(ps)

    def _predict_slot(self, now: datetime) -> tuple[ProcState, Readiness, RunPlan] | None:
        """The waiting run that takes the next slot to free, when the rules make it certain."""
        if self.reserved or self.in_flight < self.slots or not self.candidates:
            return None  # (with a slot free after the allocation, the head waits for capacity)
        key = self.candidates[0]
        ps = self.states.get(key[-1])
        if ps is None or ps.invalid is not None or ps.flights:
            return None
        r = ps.readiness
        if r is None or not r.candidate or r.kind is StartKind.RETRY or r.next_check is not None:
            return None
        d = ps.definition
        if d.pool is not None or d.resources or d.condition is not None:
            return None
        ranking = self.registry.ranking
        succ = self.dag.g.succ
        for name in set(self.run_index.values()):
            running = self.states.get(name)
            if running is None:  # an orphan (removed from the registry as it ran): not here
                return None
            first = running.definition.recurrent or _later_key(running, ranking) < key
            if first and self._again_at_once(running):
                return None
            successors = succ.get(name, ())
            if len(successors) > SUCCESSORS_SCANNED:
                return None
            for s in successors:
                rival = self.states.get(s)
                if rival is None or rival.candidate:  # a candidate ranks after W already
                    continue
                # the rank first: it is cheaper than asking what the successor waits for
                if _later_key(rival, ranking) < key and self._waits_only_for(s, name):
                    return None
        return ps, r, next_run(ps, r, now)
