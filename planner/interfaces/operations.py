"""The operations on processes and runs, shared by the command line and the HTTP API: ``trigger``,
``cancel``, ``hold``, ``release``, ``reset``, ``set_fields``, ``retry``.

They write to the database only: a request (trigger, cancel, reset) or a definition change, which
a running planner picks up at its next tick. None of them needs a planner to be running; those
whose request waits for one say so in ``Outcome.note`` when none holds a live lease.

A request that is already satisfied is *moot*, not an error: cancelling a run that has ended,
holding a held process, releasing one that is not held return ``Outcome(done=False)`` and write
nothing. What cannot be done raises an error of ``registry.errors``: ``ProcessNotFound`` and
``RunNotFound`` for unknown names, ``Conflict`` for a request that cannot be carried out as asked
now (``reset`` while a run is in flight, ``retry`` of a run whose retry waits, runs or
succeeded), ``InvalidRequest`` for params that are not a JSON object
of finite numbers, ``DefinitionError`` for a change the YAML rules refuse. The command line prints
``Outcome.message`` (exit 0) or the error (exit 1); the API answers 200 with the outcome, or
404 / 409 / 400.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from planner.core.schedule import zone
from registry.definitions.templates import members
from registry.errors import Conflict, InvalidRequest, ProcessNotFound
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.records import Request, RequestKind

if TYPE_CHECKING:
    from registry.storage.store import Store

__all__ = [
    "DEAD_LETTERS",
    "NO_PLANNER",
    "Outcome",
    "cancel",
    "check_params",
    "hold",
    "release",
    "reset",
    "retry",
    "set_fields",
    "trigger",
]

#: the runs ``retry`` takes, which ``history --status failed`` lists: those that ended without
#: succeeding
DEAD_LETTERS = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED})

NO_PLANNER = "no planner is running on this database; the request waits for the next `planner run`"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What an operation did: ``done`` (it wrote) or moot (already the case, nothing written)."""

    done: bool
    message: str  # one line, as ``planner`` prints it
    request: int | None = None  # the request written, for trigger / cancel / reset
    waits: str | None = None  # a trigger of a process that cannot start now: what it waits for
    note: str | None = None  # the request waits for a planner: none is running


def _existing(store: Store, process: str) -> RegistryDef:
    registry, _ = store.load_registry()
    if process not in registry.processes and process not in registry.invalid:
        raise ProcessNotFound(process)
    return registry


def _targets(store: Store, name: str) -> tuple[RegistryDef, list[str]]:
    """The processes ``name`` means: itself, or every process of the template ``name``."""
    registry, _ = store.load_registry()
    if name in registry.processes or name in registry.invalid:
        return registry, [name]
    found = members(registry, name)
    if not found:
        raise ProcessNotFound(name)
    return registry, found


def _all(names: list[str]) -> str:
    shown = ", ".join(map(repr, names[:5]))
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _waits_for(registry: RegistryDef, process: str) -> str | None:
    """What keeps ``process`` from starting whatever a trigger asks, if anything."""
    if process in registry.invalid:
        return f"its definition is invalid: {registry.invalid[process]}"
    definition = registry.processes[process]
    if definition.hold:
        return f"{process!r} is held (`planner release {process}`)"
    if not definition.enabled:
        return f"{process!r} is disabled (`planner set {process} enabled=true`)"
    return None


def _no_planner(store: Store, now: datetime) -> str | None:
    """Requests wait for a planner: say so when none holds a live lease."""
    lease = store.lease_state()
    if lease.holder is None or lease.expires_at is None or lease.expires_at <= now:
        return NO_PLANNER
    return None


def check_params(params: Any) -> dict[str, Any]:
    """``params`` as a trigger stores them: a JSON object whose numbers are finite (no database
    stores NaN or Infinity as JSON); ``InvalidRequest`` otherwise."""
    if not isinstance(params, Mapping):
        raise InvalidRequest("params must be a JSON object")

    def check(value: Any, where: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequest(f"params{where}: {value} is not allowed (JSON numbers are finite)")
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidRequest(f"params{where}: keys must be strings, not {key!r}")
                check(item, f"{where}.{key}")
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                check(item, f"{where}[{index}]")

    check(params, "")
    return dict(params)


def trigger(
    store: Store,
    process: str,
    *,
    params: Mapping[str, Any],
    force: bool,
    now: datetime,
    at: datetime | None = None,
) -> Outcome:
    """Request an extra run of ``process`` now, or from ``at`` on (``force``: past its
    ancestors too). The request is durable: a planner started later still carries it out."""
    checked = check_params(params)
    registry, names = _targets(store, process)
    due = at if at is not None and at > now else None
    if names != [process]:  # a template: one request per process, in one transaction
        ids = store.add_requests(
            [
                Request(
                    id=0,
                    kind=RequestKind.TRIGGER,
                    created=now,
                    process=name,
                    params=checked,
                    force=force,
                    due=due,
                )
                for name in names
            ]
        )
        return Outcome(
            done=True,
            message=f"requests {ids[0]}–{ids[-1]}: trigger the {len(names)} processes of "
            f"template {process!r}",
            request=ids[0],
            note=_no_planner(store, now),
        )
    request = store.add_request(
        RequestKind.TRIGGER, at=now, process=process, params=checked, force=force, due=due
    )
    forced = " (forced past its ancestors)" if force else ""
    later = f" at {due.astimezone(zone(registry.timezone)).isoformat()}" if due else ""
    waits = None if due else _waits_for(registry, process)
    message = f"request {request}: trigger {process!r}{later}{forced}" + (
        f"; waits: {waits}" if waits else ""
    )
    return Outcome(
        done=True, message=message, request=request, waits=waits, note=_no_planner(store, now)
    )


def retry(store: Store, run_id: str, *, now: datetime) -> Outcome:
    """Ask for a failed, timed-out or cancelled ``run_id`` again: a durable request for a new
    run of its process with its params and scheduled time (only that run satisfies it), which
    remembers ``run_id`` (``status`` says "retry of"). ``RunNotFound``; ``Conflict`` for a run
    that succeeded or has not ended, and for one whose retry waits, runs or succeeded (a
    retry that failed in turn does not stand in the way of another)."""
    run = store.run(run_id)
    if run.status not in DEAD_LETTERS:
        if run.status is RunStatus.SUCCEEDED:
            raise Conflict(
                f"run {run_id!r} succeeded: nothing to retry (`planner trigger {run.process}` "
                "asks for another run)"
            )
        raise Conflict(f"run {run_id!r} is {run.status.value}: let it end first")
    _existing(store, run.process)
    request = store.add_retry(run_id, at=now)
    return Outcome(
        done=True,
        message=f"request {request}: {run_id!r} again, as a new run of {run.process!r}",
        request=request,
        note=_no_planner(store, now),
    )


def cancel(store: Store, run_id: str, *, now: datetime) -> Outcome:
    """Cancel run ``run_id`` (queued, running or waiting to retry); ``RunNotFound`` if unknown."""
    process = store.run_process(run_id)
    if run_id not in {r.run_id for r in store.active_runs()}:
        ended = next((a.status.value for a in store.history(process) if a.run_id == run_id), None)
        how = f" ({ended})" if ended else ""
        return Outcome(
            done=False,
            message=f"run {run_id!r} of {process!r} has already ended{how}: nothing to cancel",
        )
    pending = [r for r in store.pending_requests() if r.kind is RequestKind.CANCEL]
    already = next((r.id for r in pending if r.run_id == run_id), None)
    if already is not None:
        return Outcome(
            done=False,
            message=f"a cancel of {run_id!r} is already pending (request {already})",
            request=already,
        )
    request = store.add_request(RequestKind.CANCEL, at=now, process=process, run_id=run_id)
    return Outcome(
        done=True,
        message=f"request {request}: cancel {run_id!r} of {process!r}",
        request=request,
        note=_no_planner(store, now),
    )


def _set_hold(store: Store, name: str, held: bool) -> Outcome:
    registry, names = _targets(store, name)
    verb, state = ("held", "already held") if held else ("released", "not held")
    todo = [n for n in names if n not in registry.processes or registry.processes[n].hold != held]
    what = repr(name) if names == [name] else f"the processes of template {name!r}"
    if not todo:
        return Outcome(done=False, message=f"{what} {'is' if names == [name] else 'are'} {state}")
    store.update_processes(todo, {"hold": held})
    if names == [name]:
        return Outcome(done=True, message=f"{verb} {name!r}")
    return Outcome(
        done=True,
        message=f"{verb} {len(todo)} of the {len(names)} processes of "
        f"template {name!r}: {_all(todo)}",
    )


def hold(store: Store, process: str) -> Outcome:
    """Never start ``process`` — or every process of the template ``process`` — until released
    (runs in flight continue)."""
    return _set_hold(store, process, True)


def release(store: Store, process: str) -> Outcome:
    """Let a held ``process`` (or a template's processes) start again."""
    return _set_hold(store, process, False)


def reset(store: Store, process: str, *, now: datetime) -> Outcome:
    """Forget ``process``'s successes and failures so it may run again (history is kept);
    ``Conflict`` while a run of it is in flight."""
    _existing(store, process)
    in_flight = sorted(r.run_id for r in store.active_runs() if r.process == process)
    if in_flight:
        runs = ", ".join(map(repr, in_flight))
        raise Conflict(
            f"cannot reset {process!r} while its run {runs} is in flight: let it end, or "
            f"`planner cancel {in_flight[0]}`, then reset"
        )
    store.reset(process, at=now)
    request = store.add_request(RequestKind.RESET, at=now, process=process)
    return Outcome(
        done=True,
        message=f"reset {process!r} (request {request})",
        request=request,
        note=_no_planner(store, now),
    )


def set_fields(
    store: Store, process: str, changes: Mapping[str, Any], *, as_text: bool = True
) -> ProcessDef:
    """Change fields of ``process``, validated like the YAML file; the new definition.

    Values are text read as YAML as ``planner set`` gives them (``"200"`` is 200), or, with
    ``as_text=False`` (a JSON body, a Python call), values as they are; ``None`` restores the
    built-in default."""
    if not changes:
        raise InvalidRequest("no change given: name at least one field")
    _, names = _targets(store, process)
    if names == [process]:
        return store.update_process(process, changes, as_text=as_text)
    # a template: all of its processes, in one transaction; the first one's definition
    return store.update_processes(names, changes, as_text=as_text)[0]
