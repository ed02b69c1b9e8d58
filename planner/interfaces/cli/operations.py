"""The commands that operate on processes and runs: ``trigger``, ``cancel``, ``hold``,
``release``, ``reset``, ``set``.

They write to the database only: a request (trigger, cancel, reset) or a definition change, which
a running planner picks up at its next tick. None of them needs a planner to be running.

A request that is already satisfied is moot, not an error: cancelling a run that has ended,
holding a held process, releasing one that is not held say so and exit 0, writing nothing. A
request that cannot be carried out as asked is a conflict, a user error (exit 1) with a one-line
message saying what to do instead: resetting a process while a run of it is in flight. A trigger
of a process that cannot start now (held, disabled, invalid) is recorded, and the command says
what it waits for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from planner.interfaces.cli.app import Env, UserError, cli, pass_env, utcnow
from planner.interfaces.cli.params import require
from planner.interfaces.terminal import value_text
from registry.model import RegistryDef
from registry.records import RequestKind

if TYPE_CHECKING:
    from registry.storage.store import Store

__all__ = ["cancel", "hold", "release", "reset", "set_fields", "trigger"]


def _existing(store: Store, process: str) -> RegistryDef:
    registry, _ = store.load_registry()
    require(registry, process)
    return registry


def _finite_only(constant: str) -> Any:
    raise ValueError(f"{constant} is not allowed (JSON numbers are finite)")


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


@cli.command()
@click.argument("process")
@click.option("--params", "params_text", metavar="JSON", help="A JSON object of extra params.")
@click.option("--force", is_flag=True, help="Also bypass the ancestors rule.")
@pass_env
def trigger(env: Env, process: str, params_text: str | None, force: bool) -> None:
    """Request an extra run of PROCESS now (a running planner picks it up)."""
    params: Any = {}
    if params_text is not None:
        try:
            params = json.loads(params_text, parse_constant=_finite_only)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"invalid JSON: {exc}", param_hint="--params") from exc
        except ValueError as exc:  # NaN, Infinity: no database can store them as JSON
            raise click.BadParameter(str(exc), param_hint="--params") from exc
        if not isinstance(params, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--params")
    store = env.store()
    registry = _existing(store, process)
    request = store.add_request(
        RequestKind.TRIGGER, at=utcnow(), process=process, params=params, force=force
    )
    forced = " (forced past its ancestors)" if force else ""
    waits = _waits_for(registry, process)
    click.echo(
        f"request {request}: trigger {process!r}{forced}" + (f"; waits: {waits}" if waits else "")
    )
    _warn_if_no_planner(store)


@cli.command()
@click.argument("run_id")
@pass_env
def cancel(env: Env, run_id: str) -> None:
    """Cancel run RUN_ID (queued, running or waiting to retry)."""
    store = env.store()
    process = store.run_process(run_id)
    if run_id not in {r.run_id for r in store.active_runs()}:
        ended = next((a.status.value for a in store.history(process) if a.run_id == run_id), None)
        how = f" ({ended})" if ended else ""
        click.echo(f"run {run_id!r} of {process!r} has already ended{how}: nothing to cancel")
        return
    pending = [r for r in store.pending_requests() if r.kind is RequestKind.CANCEL]
    already = next((r.id for r in pending if r.run_id == run_id), None)
    if already is not None:
        click.echo(f"a cancel of {run_id!r} is already pending (request {already})")
        return
    request = store.add_request(RequestKind.CANCEL, at=utcnow(), process=process, run_id=run_id)
    click.echo(f"request {request}: cancel {run_id!r} of {process!r}")
    _warn_if_no_planner(store)


@cli.command()
@click.argument("process")
@pass_env
def hold(env: Env, process: str) -> None:
    """Never start PROCESS until released (runs in flight continue)."""
    store = env.store()
    definition = _existing(store, process).processes.get(process)
    if definition is not None and definition.hold:
        click.echo(f"{process!r} is already held")
        return
    store.update_process(process, {"hold": True})
    click.echo(f"held {process!r}")


@cli.command()
@click.argument("process")
@pass_env
def release(env: Env, process: str) -> None:
    """Let a held PROCESS start again."""
    store = env.store()
    definition = _existing(store, process).processes.get(process)
    if definition is not None and not definition.hold:
        click.echo(f"{process!r} is not held")
        return
    store.update_process(process, {"hold": False})
    click.echo(f"released {process!r}")


@cli.command()
@click.argument("process")
@pass_env
def reset(env: Env, process: str) -> None:
    """Forget PROCESS's successes and failures so it may run again (history is kept)."""
    store = env.store()
    _existing(store, process)
    in_flight = sorted(r.run_id for r in store.active_runs() if r.process == process)
    if in_flight:
        runs = ", ".join(map(repr, in_flight))
        raise UserError(
            f"cannot reset {process!r} while its run {runs} is in flight: let it end, or "
            f"`planner cancel {in_flight[0]}`, then reset"
        )
    now = utcnow()
    store.reset(process, at=now)
    request = store.add_request(RequestKind.RESET, at=now, process=process)
    click.echo(f"reset {process!r} (request {request})")
    _warn_if_no_planner(store)


@cli.command(name="set")
@click.argument("process")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@pass_env
def set_fields(env: Env, process: str, assignments: Sequence[str]) -> None:
    """Change fields of PROCESS: KEY=VALUE..., e.g. priority=200 retry_delay=5m.

    Values are read as YAML (true, [a, b]); null restores the built-in default. The change is
    validated like the YAML file and a running planner picks it up at its next tick."""
    changes: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="KEY=VALUE")
        if key.strip() in changes:
            raise click.BadParameter(f"{key.strip()!r} given twice", param_hint="KEY=VALUE")
        changes[key.strip()] = value
    definition = env.store().update_process(process, changes)
    for key in changes:
        click.echo(f"{process}.{key}: {value_text(getattr(definition, key))}")


def _warn_if_no_planner(store: Store) -> None:
    """Requests wait for a planner: say so when none holds a live lease."""
    lease = store.lease_state()
    now = utcnow()
    if lease.holder is None or lease.expires_at is None or lease.expires_at <= now:
        click.echo(
            "note: no planner is running on this database; the request waits for the next "
            "`planner run`",
            err=True,
        )
