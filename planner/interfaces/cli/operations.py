"""The commands that operate on processes and runs: ``trigger``, ``cancel``, ``hold``,
``release``, ``reset``, ``set``.

They write to the database only: a request (trigger, cancel, reset) or a definition change, which
a running planner picks up at its next tick. None of them needs a planner to be running.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from planner.interfaces.cli.app import Env, UserError, cli, pass_env, utcnow
from planner.interfaces.cli.params import require
from planner.interfaces.terminal import value_text
from registry.records import RequestKind
from registry.storage.store import Store

__all__ = ["cancel", "hold", "release", "reset", "set_fields", "trigger"]


def _existing(store: Store, process: str) -> None:
    registry, _ = store.load_registry()
    require(registry, process)


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
            params = json.loads(params_text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"invalid JSON: {exc}", param_hint="--params") from exc
        if not isinstance(params, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--params")
    store = env.store()
    _existing(store, process)
    request = store.add_request(
        RequestKind.TRIGGER, at=utcnow(), process=process, params=params, force=force
    )
    forced = " (forced past its ancestors)" if force else ""
    click.echo(f"request {request}: trigger {process!r}{forced}")


@cli.command()
@click.argument("run_id")
@pass_env
def cancel(env: Env, run_id: str) -> None:
    """Cancel run RUN_ID (queued, running or waiting to retry)."""
    store = env.store()
    process = store.run_process(run_id)
    if run_id not in {r.run_id for r in store.active_runs()}:
        raise UserError(f"run {run_id!r} of {process!r} has already ended; nothing to cancel")
    request = store.add_request(RequestKind.CANCEL, at=utcnow(), process=process, run_id=run_id)
    click.echo(f"request {request}: cancel {run_id!r} of {process!r}")


@cli.command()
@click.argument("process")
@pass_env
def hold(env: Env, process: str) -> None:
    """Never start PROCESS until released (runs in flight continue)."""
    env.store().update_process(process, {"hold": True})
    click.echo(f"held {process!r}")


@cli.command()
@click.argument("process")
@pass_env
def release(env: Env, process: str) -> None:
    """Let a held PROCESS start again."""
    env.store().update_process(process, {"hold": False})
    click.echo(f"released {process!r}")


@cli.command()
@click.argument("process")
@pass_env
def reset(env: Env, process: str) -> None:
    """Forget PROCESS's successes and failures so it may run again (history is kept)."""
    store = env.store()
    _existing(store, process)
    now = utcnow()
    store.reset(process, at=now)
    request = store.add_request(RequestKind.RESET, at=now, process=process)
    click.echo(f"reset {process!r} (request {request})")


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
