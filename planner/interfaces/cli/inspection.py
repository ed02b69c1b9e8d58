"""The commands that look without changing anything: ``plan``, ``simulate``, ``explain``,
``status``, ``history``.

``plan`` and ``explain`` build the core from the database as a planner starting at ``--at`` would
(``_dry_run_core``), requests not yet picked up included, so what they show is what ``run`` would
do; ``simulate`` runs the same core over FILES on a virtual clock, without Dask or a database.
``status`` and ``history`` only read the store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
import yaml

from planner.interfaces.cli.app import Env, cli, pass_env, utcnow
from planner.interfaces.cli.params import (
    DURATION,
    SINCE,
    TIME,
    format_option,
    require,
    resolve,
    timezone_of,
)
from planner.interfaces.terminal import (
    FAILED,
    PLAN_WAITS_SHOWN,
    attempts_table,
    emit_json,
    explanation_json,
    explanation_view,
    history_json,
    iso,
    plan_json,
    plan_table,
    planners_json,
    show,
    simulation_json,
    simulation_view,
    status_json,
    status_view,
)
from registry.definitions.durations import parse_duration
from registry.errors import ProcessNotFound
from registry.lifecycle import RunStatus
from registry.records import RequestKind

if TYPE_CHECKING:
    from planner.core.planner import Planner
    from planner.simulation.simulate import Outcome
    from registry.model import RegistryDef
    from registry.storage.store import Store

__all__ = ["explain", "history", "plan", "simulate", "status"]


_SIMULATED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT)
_STATUS_WINDOW = timedelta(days=1)  # ``planner status`` lists failed attempts of the last day


def _dry_run_core(
    store: Store,
    registry: RegistryDef,
    applied: Mapping[str, datetime],
    at: datetime,
    slots: int | None,
) -> Planner:
    """The core built from the database state, as a planner starting at ``at`` would see it."""
    from planner.core.events import ProcessReset, TriggerRequested
    from planner.core.planner import Planner

    core = Planner(
        registry,
        now=at,
        applied_at=applied,
        histories=store.load_histories(),
        slots=slots,
        threads=os.cpu_count(),  # slots: --slots, else the registry's, else this machine's threads
    )
    # requests a running planner has not picked up yet are part of the state it will act on
    pending: list[TriggerRequested | ProcessReset] = []
    for req in store.pending_requests():
        if req.kind is RequestKind.TRIGGER and req.process:
            pending.append(
                TriggerRequested(
                    process=req.process, at=req.created, params=dict(req.params), force=req.force
                )
            )
        elif req.kind is RequestKind.RESET and req.process:
            pending.append(ProcessReset(process=req.process, at=req.created))
    core.observe(at, *pending)
    return core


# -- planning -----------------------------------------------------------------------------------


@cli.command()
@click.option("--at", "at", type=TIME, help="ISO-8601 time (naive: registry timezone) or now.")
@click.option("--slots", type=click.IntRange(min=1), help="Slots to plan for.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help=f"List every waiting process (the table shows the first {PLAN_WAITS_SHOWN}).",
)
@format_option
@pass_env
def plan(env: Env, at: datetime | None, slots: int | None, show_all: bool, fmt: str) -> None:
    """One dry-run tick from the database state: start or wait, with reasons.

    The table lists every start and the first waiting processes, then counts the others by
    reason; ``--all`` lists them all, and ``--format json`` is always complete."""
    store = env.store()
    registry, applied = store.load_registry()
    tz = timezone_of(registry)
    when = resolve(at, tz, utcnow())
    decisions = _dry_run_core(store, registry, applied, when, slots).plan(when)
    if fmt == "json":
        emit_json(plan_json(when, decisions, tz))
    else:
        show(plan_table(when, decisions, tz, waits=None if show_all else PLAN_WAITS_SHOWN))


@cli.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--slots", type=click.IntRange(min=1), help="[default: registry's, else CPU count]")
@click.option("--start", type=TIME, help="ISO-8601 (naive: registry timezone) [default: now].")
@click.option("--for", "span", type=DURATION, default="24h", show_default=True)
@click.option(
    "--durations",
    "durations_file",
    type=click.Path(dir_okay=False),
    help="YAML/JSON: process -> duration, or {duration, status: failed|succeeded|timed_out}.",
)
@format_option
def simulate(
    files: Sequence[str],
    slots: int | None,
    start: datetime | None,
    span: timedelta,
    durations_file: str | None,
    fmt: str,
) -> None:
    """Run the planner over FILES on a virtual clock (no Dask, no database)."""
    from planner.simulation.simulate import simulate as run_simulation
    from registry.definitions.loader import load_files

    registry = load_files(files)
    tz = timezone_of(registry)
    begin = resolve(start, tz, utcnow().replace(second=0, microsecond=0))
    outcomes = _read_outcomes(durations_file, registry) if durations_file else None
    sim = run_simulation(
        registry,
        start=begin,
        until=begin + span,
        slots=slots or registry.slots or os.cpu_count() or 1,
        outcomes=outcomes,
    )
    if fmt == "json":
        emit_json(simulation_json(sim, tz))
    else:
        show(simulation_view(sim, tz))


def _read_outcomes(path: str, registry: RegistryDef) -> dict[str, Outcome]:
    """``--durations``: process -> duration, or -> {duration, status} (duration optional)."""
    from planner.simulation.simulate import DEFAULT_DURATION, Outcome

    def bad(message: str) -> NoReturn:
        raise click.BadParameter(message, param_hint="--durations")

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        bad(f"cannot read {path}: {exc}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        bad(f"{path} must map process names to durations")
    outcomes: dict[str, Outcome] = {}
    for name, spec in data.items():
        definition = registry.processes.get(str(name))
        if definition is None:
            bad(f"{path}: {ProcessNotFound(str(name))}")
        fields = spec if isinstance(spec, dict) else {"duration": spec}
        if set(fields) - {"duration", "status"}:
            bad(f"{path}: {name}: only 'duration' and 'status' are allowed")
        status = str(fields.get("status", "succeeded"))
        if status not in _SIMULATED_STATUSES:
            bad(f"{path}: {name}: status must be one of {', '.join(_SIMULATED_STATUSES)}")
        try:
            duration = (
                parse_duration(fields["duration"])
                if "duration" in fields
                else definition.expected_duration or DEFAULT_DURATION
            )
        except ValueError as exc:
            bad(f"{path}: {name}: {exc}")
        outcomes[str(name)] = Outcome(duration=duration, status=RunStatus(status))
    return outcomes


@cli.command()
@click.argument("process")
@click.option("--at", "at", type=TIME, help="ISO-8601 time (naive: registry timezone) or now.")
@format_option
@pass_env
def explain(env: Env, process: str, at: datetime | None, fmt: str) -> None:
    """Why PROCESS is or is not running, and when it next could."""
    store = env.store()
    registry, applied = store.load_registry()
    require(registry, process)
    tz = timezone_of(registry)
    when = resolve(at, tz, utcnow())
    explanation = _dry_run_core(store, registry, applied, when, None).explain(process, when)
    decisions = store.decisions(process, limit=10)
    attempts = store.history(process, limit=5)
    if fmt == "json":
        emit_json(explanation_json(explanation, decisions, attempts, tz))
    else:
        show(explanation_view(explanation, decisions, attempts, tz))


# -- watching -----------------------------------------------------------------------------------


@cli.command()
@format_option
@pass_env
def status(env: Env, fmt: str) -> None:
    """Registry summary, runs in flight and recent failures."""
    store = env.store()
    registry, _ = store.load_registry()
    tz = timezone_of(registry)
    since = utcnow() - _STATUS_WINDOW
    recent = store.history(since=since, limit=500)
    failures = [a for a in recent if a.status in FAILED][:20]
    active = store.active_runs()
    planners = planners_json(store.lease_state(), utcnow(), tz)
    planners["triggers"] = [
        {"request": r.id, "process": r.process, "force": r.force, "requested": iso(r.created, tz)}
        for r in store.pending_requests()
        if r.kind is RequestKind.TRIGGER
    ]
    if fmt == "json":
        emit_json(status_json(registry, active, failures, tz, planners=planners))
    else:
        show(status_view(registry, active, failures, tz, failures_since=since, planners=planners))


@cli.command()
@click.argument("process", required=False)
@click.option("--since", type=SINCE, help="A duration back from now (1d) or an ISO-8601 time.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@format_option
@pass_env
def history(
    env: Env,
    process: str | None,
    since: timedelta | datetime | None,
    limit: int,
    fmt: str,
) -> None:
    """Past attempts, newest first (one entry per attempt)."""
    store = env.store()
    registry, _ = store.load_registry()
    tz = timezone_of(registry)
    now = utcnow()
    start = now - since if isinstance(since, timedelta) else None
    if isinstance(since, datetime):
        start = resolve(since, tz, now)
    attempts = store.history(process, since=start, limit=limit)
    if process is not None and not attempts:
        require(registry, process)  # a removed process with history still shows it
    if fmt == "json":
        emit_json(history_json(attempts, tz))
    elif attempts:
        show(attempts_table(attempts, tz))
    else:
        click.echo("no runs")
