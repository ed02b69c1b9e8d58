"""The commands that look without changing anything: ``plan``, ``simulate``, ``explain``,
``status``, ``history``.

``plan`` and ``explain`` build the core from the database as a planner starting at ``--at`` would
(``planner.interfaces.dry_run``), requests not yet picked up included, so what they show is what
``run`` would do; ``simulate`` runs the same core over FILES on a virtual clock, without Dask or
a database. ``status`` and ``history`` only read the store.

``history --status S`` lists the runs whose status is S — the final one, once they ended —
each by its latest attempt. ``--status failed`` lists every run that ended without succeeding
(failed, timed out or cancelled): the dead letters that ``planner retry`` takes. Under its
table, the text says which listed runs were retried, as which run and how that ended (the
JSON keeps the SPEC's entries); ``status`` says of a pending retry which run it retries.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

from planner.interfaces.cli.app import Env, cli, pass_env, utcnow
from planner.interfaces.cli.params import (
    DURATION,
    SINCE,
    TIME,
    format_option,
    require,
    resolve,
    timezone_of,
    wide_option,
)
from planner.interfaces.cli.simulation_files import read_conditions, read_outcomes
from planner.interfaces.dry_run import dry_run_core as _dry_run_core
from planner.interfaces.operations import DEAD_LETTERS
from planner.interfaces.terminal import (
    FAILED,
    PLAN_WAITS_SHOWN,
    attempts_table,
    emit_json,
    explanation_json,
    explanation_view,
    history_json,
    plan_json,
    plan_table,
    planners_json,
    show,
    simulation_json,
    simulation_view,
    status_json,
    status_view,
)
from planner.interfaces.terminal.documents import triggers_json
from planner.interfaces.terminal.run_views import template_view
from registry.definitions.templates import members, templates_of
from registry.lifecycle import RunStatus

if TYPE_CHECKING:
    from registry.model import RegistryDef
    from registry.storage.run_writes import Retry

__all__ = ["explain", "history", "plan", "simulate", "status"]


_STATUS_WINDOW = timedelta(days=1)  # ``planner status`` lists failed attempts of the last day


# -- planning -----------------------------------------------------------------------------------


def template_of(registry: RegistryDef) -> dict[str, str]:
    """Process → the template it is an item of."""
    return {name: t for t, names in templates_of(registry).items() for name in names}


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
@wide_option
@pass_env
def plan(
    env: Env, at: datetime | None, slots: int | None, show_all: bool, fmt: str, wide: bool
) -> None:
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
        waits = None if show_all else PLAN_WAITS_SHOWN
        # a template's processes alike are one row, unless --all expands them
        groups = None if show_all else template_of(registry)
        table = plan_table(
            when, decisions, tz, waits=waits, now=utcnow(), wide=wide, templates=groups
        )
        show(table, wide=wide)


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
@click.option(
    "--conditions",
    "conditions_file",
    type=click.Path(dir_okay=False),
    help="YAML/JSON: process -> the time its condition becomes true [default: always true].",
)
@format_option
@wide_option
def simulate(
    files: Sequence[str],
    slots: int | None,
    start: datetime | None,
    span: timedelta,
    durations_file: str | None,
    conditions_file: str | None,
    fmt: str,
    wide: bool,
) -> None:
    """Run the planner over FILES on a virtual clock (no Dask, no database)."""
    from planner.simulation.simulate import simulate as run_simulation
    from registry.definitions.loader import load_files

    registry = load_files(files)
    tz = timezone_of(registry)
    begin = resolve(start, tz, utcnow().replace(second=0, microsecond=0))
    outcomes = read_outcomes(durations_file, registry) if durations_file else None
    conditions = read_conditions(conditions_file, registry, tz) if conditions_file else None
    sim = run_simulation(
        registry,
        start=begin,
        until=begin + span,
        slots=slots or registry.slots or os.cpu_count() or 1,
        outcomes=outcomes,
        conditions=conditions,
    )
    if fmt == "json":
        emit_json(simulation_json(sim, tz))
    else:
        show(simulation_view(sim, tz, now=utcnow(), wide=wide), wide=wide)


@cli.command()
@click.argument("process")
@click.option("--at", "at", type=TIME, help="ISO-8601 time (naive: registry timezone) or now.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="A template: one row per process (the table sums them up by decision and reasons).",
)
@format_option
@wide_option
@pass_env
def explain(
    env: Env, process: str, at: datetime | None, show_all: bool, fmt: str, wide: bool
) -> None:
    """Why PROCESS is or is not running, and when it next could (a template: its processes,
    summed up by decision and reasons; ``--all`` or ``--format json`` for each)."""
    store = env.store()
    registry, applied = store.load_registry()
    tz = timezone_of(registry)
    when = resolve(at, tz, utcnow())
    group = members(registry, process)
    if group and process not in registry.processes:  # a template: each of its processes
        core = _dry_run_core(store, registry, applied, when, None)
        decided = {d.process: d for d in core.plan(when)}
        chosen = [decided[name] for name in group if name in decided]
        if fmt == "json":
            emit_json(plan_json(when, chosen, tz))
        else:
            view = template_view(
                process, when, chosen, tz, show_all=show_all, now=utcnow(), wide=wide
            )
            show(view, wide=wide)
        return
    require(registry, process)
    explanation = _dry_run_core(store, registry, applied, when, None).explain(process, when)
    decisions = store.decisions(process, limit=10)
    attempts = store.history(process, limit=5)
    if fmt == "json":
        emit_json(explanation_json(explanation, decisions, attempts, tz))
    else:
        view = explanation_view(explanation, decisions, attempts, tz, now=utcnow(), wide=wide)
        show(view, wide=wide)


# -- watching -----------------------------------------------------------------------------------


@cli.command()
@format_option
@wide_option
@pass_env
def status(env: Env, fmt: str, wide: bool) -> None:
    """Registry summary, runs in flight and recent failures."""
    store = env.store()
    registry, _ = store.load_registry()
    tz = timezone_of(registry)
    since = utcnow() - _STATUS_WINDOW
    recent = store.history(since=since, limit=500)
    failures = [a for a in recent if a.status in FAILED][:20]
    active = store.active_runs()
    planners = planners_json(store.lease_state(), utcnow(), tz)
    pending = store.pending_requests()
    planners["triggers"] = triggers_json(pending, tz)
    if fmt == "json":
        emit_json(status_json(registry, active, failures, tz, planners=planners))
    else:
        view = status_view(
            registry,
            active,
            failures,
            tz,
            failures_since=since,
            planners=planners,
            now=utcnow(),
            wide=wide,
        )
        show(view, wide=wide)


@cli.command()
@click.argument("process", required=False)
@click.option("--since", type=SINCE, help="A duration back from now (1d) or an ISO-8601 time.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--status",
    type=click.Choice([s.value for s in RunStatus]),
    help="Only the runs in this status (their final one), by their latest attempt; failed: "
    "every run that ended without succeeding (failed, timed_out, cancelled), the dead letters "
    "for `planner retry`.",
)
@format_option
@wide_option
@pass_env
def history(
    env: Env,
    process: str | None,
    since: timedelta | datetime | None,
    limit: int,
    status: str | None,
    fmt: str,
    wide: bool,
) -> None:
    """Past attempts, newest first (one entry per attempt); the JSON says if --limit cut it.
    With --status, the runs in that status, each by its latest attempt."""
    store = env.store()
    registry, _ = store.load_registry()
    tz = timezone_of(registry)
    now = utcnow()
    start = now - since if isinstance(since, timedelta) else None
    if isinstance(since, datetime):
        start = resolve(since, tz, now)
    if status:
        wanted = DEAD_LETTERS if status == RunStatus.FAILED.value else {RunStatus(status)}
        attempts = store.runs_in_status(wanted, process, since=start, limit=limit + 1)
    else:
        attempts = store.history(process, since=start, limit=limit + 1)
    more = len(attempts) > limit
    attempts = attempts[:limit]
    if process is not None and not attempts:
        require(registry, process)  # a removed process with history still shows it
    if fmt == "json":
        emit_json(history_json(attempts, tz, more=more))
    elif attempts:
        show(attempts_table(attempts, tz, now=now, wide=wide), wide=wide)
        if more:
            click.echo(f"(the {limit} newest shown; --limit for more)")
        for line in retry_lines(store.retries({a.run_id for a in attempts})):
            click.echo(line)
    else:
        click.echo("no runs")


#: ``history`` names at most this many retries under its table
_RETRIES_SHOWN = 20


def retry_lines(retries: Sequence[Retry]) -> list[str]:
    """``load-1 retried as load-2 (succeeded)``, one line per retry, the latest last."""

    def line(r: Retry) -> str:
        if r.run_id is not None and r.status is not None:
            return f"{r.of} retried as {r.run_id} ({r.status.value})"
        if r.pending:
            return f"{r.of} retried: request {r.request} waits for its run"
        return f"{r.of} retried: request {r.request} ended without a run"

    lines = [line(r) for r in retries[-_RETRIES_SHOWN:]]
    cut = len(retries) - len(lines)
    return ([f"… and {cut} earlier retries"] if cut else []) + lines
