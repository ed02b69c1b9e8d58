"""Readiness: may process P start at time t, and if not, why (the SPEC's reason codes)?

``evaluate`` is a pure function of a process's state, its ancestors' states and ``t``. Besides the
reasons it returns the earliest future time at which a time-based rule could change the answer
(``next_check``, the core's wake-up) and, when only time gates are closed, when they all open
(``opens_at``, used by reservations and ``explain``).

The condition rule is judged last, from the driver's answers (``ProcState.condition``): a true
answer lets a run start for ``CONDITION_FRESH`` at most (``condition_interval``, if shorter), so
a start that waited longer — for a slot — asks the condition once more before it happens (the
core asks for that ahead, while the slot is awaited: ``ProcessBook.conditions_due``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from planner.core.events import Code, Reason, StartKind, TriggerRequested, make_reason
from planner.core.schedule import local_time_today, next_local_midnight
from planner.core.state import Flight, ProcState, Readiness
from registry.lifecycle import RunStatus
from registry.model import Missed, ProcessDef

#: codes that only time can lift
TIME_GATES = frozenset({Code.NOT_DUE, Code.REFRESH_WINDOW, Code.NOT_BEFORE, Code.RETRY_DELAY})
_FAILED = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED})
#: how long a true condition answer lets a run start ("just before"): past it, the start waits
#: for the driver to ask once more (it asks at once, off its loop)
CONDITION_FRESH = timedelta(seconds=10)


def condition_fresh(d: ProcessDef) -> timedelta:
    """How long a true answer of ``d``'s condition lets a run start."""
    return min(d.condition_interval, CONDITION_FRESH)


def _fmt(t: datetime, tz: ZoneInfo) -> str:
    return t.astimezone(tz).isoformat(timespec="seconds")


def ancestor_problems(ps: ProcState, states: Mapping[str, ProcState]) -> list[str]:
    """The ancestors without a successful run that finished after ``ps``'s last start."""
    stale: list[str] = []
    since = ps.last_start
    for name in ps.definition.ancestors:
        anc = states.get(name)
        if anc is None:
            stale.append(f"{name} (not in the registry)")
            continue
        if anc.invalid is not None:
            stale.append(f"{name} (invalid)")
            continue
        end = anc.last_success_end
        if end is not None and (since is None or end > since):
            continue
        if anc.flights:
            stale.append(f"{name} (running)")
        elif anc.retrying:
            stale.append(f"{name} (retrying)")
        elif anc.last_outcome in _FAILED and (end is None or anc.last_end != end):
            stale.append(f"{name} ({anc.last_outcome.value if anc.last_outcome else 'failed'})")
        elif end is None:
            stale.append(f"{name} (never succeeded)")
        else:
            stale.append(f"{name} (no success since this process last started)")
    return stale


_DONE = Reason(Code.DONE, "single process already succeeded")
_ONLY_DONE = (_DONE,)


def plain_reasons(ps: ProcState, states: Mapping[str, ProcState]) -> tuple[Reason, ...] | None:
    """The reasons of a plain single process, which nothing but its ancestors (and having
    succeeded) can hold back — most of a large DAG waiting on its ancestors — cheaply: the same
    reasons as every rule in turn (``evaluate_rules``). None for any other process.

    A cold evaluation calls it once per process; for a waiting one, the reasons are all it
    keeps (``plain_readiness`` makes the whole evaluation of one)."""
    d = ps.definition
    if not (
        not ps.flights
        and not ps.retrying
        and not ps.triggers
        and d.cron is None
        and d.every is None
        and d.enabled
        and not d.hold
        and d.start_at is None
        and d.end_at is None
        and d.max_runs is None
        and d.refresh_window is None
        and d.not_before is None
        and d.max_active > 0
        and d.condition is None
        and ps.invalid is None
        and ps.last_outcome not in _FAILED
    ):
        return None
    stale = ancestor_problems(ps, states) if d.ancestors else None
    if ps.successes:
        if stale:
            return (_DONE, make_reason(Code.ANCESTORS, ", ".join(stale)))
        return _ONLY_DONE
    if stale:
        return (make_reason(Code.ANCESTORS, ", ".join(stale)),)
    return ()


def plain_readiness(ps: ProcState, t: datetime, reasons: tuple[Reason, ...]) -> Readiness:
    """The evaluation at ``t`` of a plain single process whose ``plain_reasons`` are
    ``reasons``: no time rule applies, and it may start at once unless it already succeeded."""
    return Readiness(reasons, StartKind.SINGLE, t, None, None if ps.successes else t)


def evaluate(
    ps: ProcState,
    t: datetime,
    states: Mapping[str, ProcState],
    *,
    tz: ZoneInfo,
    online_since: datetime,
) -> Readiness:
    """Every readiness rule of the SPEC for ``ps`` at ``t``. ``ps.next_fire`` must be current."""
    reasons = plain_reasons(ps, states)  # the common case, cheaply
    if reasons is not None:
        return plain_readiness(ps, t, reasons)
    return evaluate_rules(ps, t, states, tz=tz, online_since=online_since)


def evaluate_rules(
    ps: ProcState,
    t: datetime,
    states: Mapping[str, ProcState],
    *,
    tz: ZoneInfo,
    online_since: datetime,
) -> Readiness:
    """``evaluate`` without its shortcut for plain single processes: each rule in turn."""
    if ps.invalid is not None:  # no rule can be judged on a definition the store refused
        return Readiness(
            reasons=(Reason(Code.INVALID, ps.invalid),),
            kind=StartKind.SINGLE,
            scheduled=t,
            next_check=None,
            opens_at=None,
        )
    d = ps.definition
    reasons: list[Reason] = []
    times: list[datetime] = []  # future instants at which the answer may change
    gates: list[datetime] = []  # when each closed time gate opens
    hard_block = False  # a rule that time alone will not lift

    if not d.enabled:
        reasons.append(Reason(Code.DISABLED))
        hard_block = True
    if d.hold:
        reasons.append(Reason(Code.HOLD))
        hard_block = True
    if d.start_at is not None and t < d.start_at:
        reasons.append(Reason(Code.WINDOW, f"active from {_fmt(d.start_at, tz)}"))
        times.append(d.start_at)
        gates.append(d.start_at)
    elif d.end_at is not None and t >= d.end_at:
        reasons.append(Reason(Code.WINDOW, f"active period ended {_fmt(d.end_at, tz)}"))
        hard_block = True
    elif d.end_at is not None:
        times.append(d.end_at)

    retry: Flight | None = None
    trigger: TriggerRequested | None = None
    kind = StartKind.SINGLE
    scheduled = t
    if ps.retrying:
        # the next attempt of a failed run comes before anything new; it was already admitted
        retry = min(ps.retrying.values(), key=lambda f: (f.retry_at or t, f.run_id))
        kind, scheduled = StartKind.RETRY, retry.scheduled
        if retry.retry_at is not None and retry.retry_at > t:
            reasons.append(
                Reason(
                    Code.RETRY_DELAY,
                    f"attempt {retry.attempt + 1} of {retry.run_id} at {_fmt(retry.retry_at, tz)}",
                )
            )
            times.append(retry.retry_at)
            gates.append(retry.retry_at)
    else:
        if d.max_runs is not None and ps.successes >= d.max_runs:
            reasons.append(Reason(Code.MAX_RUNS, f"{ps.successes} of {d.max_runs} runs done"))
            hard_block = True
        # the process's own schedule first; a trigger is an extra run, used when the schedule
        # would not start one now (it bypasses exactly the rules the schedule imposes)
        own: list[Reason] = []
        own_times: list[datetime] = []
        own_gates: list[datetime] = []
        own_hard = False
        if d.recurrent:
            kind = StartKind.FIRE
            if _due_recurrent(ps, t, own, own_times, own_gates, tz, online_since):
                scheduled = fire_to_run(ps, t)
        elif ps.last_outcome in _FAILED:
            outcome = ps.last_outcome.value if ps.last_outcome else "failed"
            own.append(
                Reason(Code.FAILED, f"last run {outcome}; `planner reset {d.name}` to rerun")
            )
            own_hard = True
        elif ps.successes > 0 and d.refresh_window is None:
            own.append(_DONE)
            own_hard = True
        elif 0 < ps.running < d.max_active and d.refresh_window is None:
            # it runs once: no second run while the first is in flight (with max_active > 1;
            # otherwise max_active says it already)
            running = ", ".join(sorted(ps.flights))
            own.append(Reason(Code.NOT_DUE, f"its run {running} is in flight"))
            own_hard = True
        if d.refresh_window is not None and ps.last_start is not None:
            until = ps.last_start + d.refresh_window
            if t < until:
                own.append(Reason(Code.REFRESH_WINDOW, f"until {_fmt(until, tz)}"))
                own_times.append(until)
                own_gates.append(until)
        _not_before(ps, t, own, own_times, own_gates, tz)
        stale = ancestor_problems(ps, states) if d.ancestors else []
        # the oldest trigger that is due, or, when ancestors are stale, the oldest forced one: a
        # forced trigger never waits behind an unforced one
        due = [x for x in ps.triggers if x.due_at(t)]
        if len(due) < len(ps.triggers):  # ``trigger --at`` requests not due yet
            times.append(min(x.due for x in ps.triggers if x.due is not None and x.due > t))
        pick = next((x for x in due if x.force), None) if stale else None
        pick = pick or (due[0] if due else None)
        if pick is not None and (own or (stale and pick.force)):
            trigger = pick
            kind, scheduled = StartKind.TRIGGER, trigger.run_scheduled
        else:
            reasons += own
            hard_block |= own_hard
        times += own_times  # the schedule's own times still matter after a triggered run
        if trigger is None:
            gates += own_gates
        if stale and (trigger is None or not trigger.force):
            reasons.append(Reason(Code.ANCESTORS, ", ".join(stale)))

    if ps.running >= d.max_active:
        reasons.append(Reason(Code.MAX_ACTIVE, f"{ps.running} of {d.max_active} running"))
        hard_block = True

    if d.condition is not None and not reasons and retry is None:
        hard_block |= _condition(ps, t, reasons, times, tz)

    waiting = [x for x in ps.triggers if x.due_at(t)]
    if waiting and reasons:  # visible: what a pending trigger waits for
        first = reasons[0]
        pending = ", ".join(f"#{x.request_id}" if x.request_id else "one" for x in waiting)
        note = f"triggered ({pending}), waiting for {first.code.value}"
        reasons[0] = Reason(first.code, f"{note}: {first.detail}" if first.detail else note)
    elif reasons and len(waiting) < len(ps.triggers):
        later = min((x for x in ps.triggers if x.due is not None and x.due > t), key=_due)
        which = f"#{later.request_id}" if later.request_id else "a trigger"
        reasons.append(Reason(Code.NOT_DUE, f"{which} at {_fmt(_due(later), tz)}"))

    future = [x for x in times if x > t]
    opens_at = None if hard_block else max(gates, default=t)
    return Readiness(
        reasons=tuple(reasons),
        kind=kind,
        scheduled=scheduled,
        next_check=min(future) if future else None,
        opens_at=opens_at,
        retry=retry,
        trigger=trigger,
    )


def _due(trigger: TriggerRequested) -> datetime:
    assert trigger.due is not None
    return trigger.due


def _condition(
    ps: ProcState, t: datetime, reasons: list[Reason], times: list[datetime], tz: ZoneInfo
) -> bool:
    """The condition rule, judged last (a condition is asked only of a process that nothing
    else holds back): its last answer must be true, given since the process last started, and
    fresh — less than ``CONDITION_FRESH`` (or ``condition_interval``, if shorter) old. A true
    answer that went stale (the process waited for a slot) is asked again before the start.
    True when it blocks."""
    answer = ps.condition
    if answer is None or (ps.last_start is not None and answer.at <= ps.last_start):
        reasons.append(Reason(Code.CONDITION, "not asked yet"))
        return True
    if not answer.value:
        asked = _fmt(answer.at, tz)
        reasons.append(Reason(Code.CONDITION, f"{answer.detail or 'false'} (asked {asked})"))
        return True
    stale = answer.at + condition_fresh(ps.definition)
    if t >= stale:
        said = f"true at {_fmt(answer.at, tz)}; asking again before it starts"
        reasons.append(Reason(Code.CONDITION, said))
        return True
    times.append(stale)  # then it may no longer start on this answer
    return False


def _due_recurrent(
    ps: ProcState,
    t: datetime,
    reasons: list[Reason],
    times: list[datetime],
    gates: list[datetime],
    tz: ZoneInfo,
    online_since: datetime,
) -> bool:
    """True when a fire is due; otherwise appends ``not_due`` with the next fire."""
    nf = ps.next_fire
    assert nf is not None and ps.schedule is not None
    if nf > t:
        reasons.append(Reason(Code.NOT_DUE, f"next fire {_fmt(nf, tz)}"))
        times.append(nf)
        gates.append(nf)
        return False
    if ps.definition.missed is Missed.SKIP:
        latest = ps.schedule.latest_at_or_before(t)
        floor = max(online_since, ps.last_end) if ps.last_end else online_since
        if latest is None or latest < floor:
            nxt = ps.schedule.first_after(t)
            reasons.append(Reason(Code.NOT_DUE, f"missed fire skipped; next {_fmt(nxt, tz)}"))
            times.append(nxt)
            gates.append(nxt)
            return False
    return True


def fire_to_run(ps: ProcState, t: datetime) -> datetime:
    """The fire time a run started at ``t`` stands for, by the process's missed-fire policy."""
    assert ps.schedule is not None and ps.next_fire is not None
    if ps.definition.missed is Missed.ALL:
        return ps.next_fire
    return ps.schedule.latest_at_or_before(t) or ps.next_fire


def _not_before(
    ps: ProcState,
    t: datetime,
    reasons: list[Reason],
    times: list[datetime],
    gates: list[datetime],
    tz: ZoneInfo,
) -> None:
    nb = ps.definition.not_before
    if nb is None:
        return
    if isinstance(nb, time):
        today = local_time_today(t, nb, tz)
        if t < today:
            reasons.append(Reason(Code.NOT_BEFORE, f"until {_fmt(today, tz)}"))
            times.append(today)
            gates.append(today)
        else:
            times.append(next_local_midnight(t, tz))  # tomorrow it closes again
    elif t < nb:
        reasons.append(Reason(Code.NOT_BEFORE, f"until {_fmt(nb, tz)}"))
        times.append(nb)
        gates.append(nb)
