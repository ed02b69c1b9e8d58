"""The commands that operate on processes and runs: ``trigger``, ``cancel``, ``hold``,
``release``, ``reset``, ``set``, ``retry``.

Each is a thin command over ``planner.interfaces.operations``, which the HTTP API calls too: the
two do the same. They write to the database only: a request (trigger, cancel, reset) or a
definition change, which a running planner picks up at its next tick. None of them needs a
planner to be running.

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
from datetime import datetime
from typing import Any

import click

from planner.interfaces import operations
from planner.interfaces.cli.app import Env, cli, pass_env, utcnow
from planner.interfaces.cli.params import TIME, resolve, timezone_of
from planner.interfaces.terminal import value_text

__all__ = ["cancel", "hold", "release", "reset", "set_fields", "trigger"]


def _finite_only(constant: str) -> Any:
    raise ValueError(f"{constant} is not allowed (JSON numbers are finite)")


def _say(outcome: operations.Outcome) -> None:
    click.echo(outcome.message)
    if outcome.note:
        click.echo(f"note: {outcome.note}", err=True)


@cli.command()
@click.argument("process")
@click.option("--params", "params_text", metavar="JSON", help="A JSON object of extra params.")
@click.option("--force", is_flag=True, help="Also bypass the ancestors rule.")
@click.option(
    "--at", "at", type=TIME, help="Due at this ISO-8601 time (naive: registry timezone), not now."
)
@pass_env
def trigger(
    env: Env, process: str, params_text: str | None, force: bool, at: datetime | None
) -> None:
    """Request an extra run of PROCESS now, or at --at (a running planner picks it up)."""
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
    store, now = env.store(), utcnow()
    due = None
    if at is not None:
        registry, _ = store.load_registry()
        due = resolve(at, timezone_of(registry), now)
    _say(operations.trigger(store, process, params=params, force=force, now=now, at=due))


@cli.command()
@click.argument("run_id")
@pass_env
def retry(env: Env, run_id: str) -> None:
    """Run a failed, timed-out or cancelled RUN_ID again: a new run with its params."""
    _say(operations.retry(env.store(), run_id, now=utcnow()))


@cli.command()
@click.argument("run_id")
@pass_env
def cancel(env: Env, run_id: str) -> None:
    """Cancel run RUN_ID (queued, running or waiting to retry)."""
    _say(operations.cancel(env.store(), run_id, now=utcnow()))


@cli.command()
@click.argument("process")
@pass_env
def hold(env: Env, process: str) -> None:
    """Never start PROCESS until released (runs in flight continue)."""
    _say(operations.hold(env.store(), process))


@cli.command()
@click.argument("process")
@pass_env
def release(env: Env, process: str) -> None:
    """Let a held PROCESS start again."""
    _say(operations.release(env.store(), process))


@cli.command()
@click.argument("process")
@pass_env
def reset(env: Env, process: str) -> None:
    """Forget PROCESS's successes and failures so it may run again (history is kept)."""
    _say(operations.reset(env.store(), process, now=utcnow()))


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
    definition = operations.set_fields(env.store(), process, changes)
    for key in changes:
        click.echo(f"{process}.{key}: {value_text(getattr(definition, key))}")
