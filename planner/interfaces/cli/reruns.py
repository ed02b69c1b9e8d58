"""The command that asks for runs of the past: ``backfill`` (one run per past fire time).

A backfill is a set of durable trigger requests, one per fire time of the process in the
range, written in one transaction, oldest first. Each carries its fire time, so its run has
``ctx.scheduled`` set to it and is satisfied by nothing but that run (a scheduled run of the
process does not count for it). They obey ancestors and capacity like any trigger, and show in
``status``, ``plan`` and ``explain`` as pending triggers.

Obeying ancestors means what it means for any run: each ancestor has succeeded since the
process last started. The first backfilled run starts on the ancestors' last success; each
later one waits for a fresh one, so a backfill of a process with ancestors says so. To rerun
a DAG over past fires, backfill its root: the descendants follow its runs as their own rules
say (those with ``refresh_window`` after each success, capacity allowing).
"""

from __future__ import annotations

from datetime import datetime

import click

from planner.interfaces.cli.app import Env, UserError, cli, pass_env, utcnow
from planner.interfaces.cli.params import TIME, require, resolve, timezone_of
from planner.interfaces.terminal.style import when_text
from registry.records import Request, RequestKind

#: the most runs one backfill may request (a typo in a year must not queue a million runs)
BACKFILL_MAX = 10_000


@cli.command()
@click.argument("process")
@click.option("--from", "start", type=TIME, required=True, help="ISO-8601 (naive: registry tz).")
@click.option("--to", "end", type=TIME, required=True, help="ISO-8601, inclusive.")
@pass_env
def backfill(env: Env, process: str, start: datetime | None, end: datetime | None) -> None:
    """One run of PROCESS per fire time from --from to --to, oldest first, each with
    ctx.scheduled set to its fire. A running planner starts them as ancestors and capacity
    allow."""
    from planner.core.schedule import fires_between, zone

    store = env.store()
    registry, applied = store.load_registry()
    require(registry, process)
    definition = registry.processes.get(process)
    if definition is None:
        raise UserError(f"{process!r} is invalid: {registry.invalid[process]}")
    if not definition.recurrent:
        raise UserError(f"{process!r} has no cron or every: `planner trigger {process}` instead")
    tz = timezone_of(registry)
    now = utcnow()
    begin, finish = resolve(start, tz, now), resolve(end, tz, now)
    if finish < begin:
        raise click.BadParameter("must not be before --from", param_hint="--to")
    try:
        fires = fires_between(
            cron=definition.cron,
            every=definition.every,
            tz=zone(registry.timezone),
            anchor=definition.start_at or applied.get(process, now),
            start=begin,
            end=finish,
            limit=BACKFILL_MAX,
        )
    except ValueError as exc:
        raise UserError(f"backfill of {process!r}: {exc}; narrow --from/--to") from exc
    if not fires:
        between = f"{when_text(begin, tz)} and {when_text(finish, tz)}"
        click.echo(f"no fire of {process!r} between {between}")
        return
    ids = store.add_requests(
        [
            Request(id=0, kind=RequestKind.TRIGGER, created=now, process=process, scheduled=fire)
            for fire in fires
        ]
    )
    runs = "1 run" if len(fires) == 1 else f"{len(fires)} runs"
    span = when_text(fires[0], tz) + ("" if len(fires) == 1 else f" … {when_text(fires[-1], tz)}")
    numbers = f"#{ids[0]}" if len(ids) == 1 else f"#{ids[0]}–#{ids[-1]}"
    click.echo(f"backfill {process!r}: {runs} requested ({numbers}), fires {span}")
    if definition.ancestors and len(fires) > 1:
        names = ", ".join(map(repr, definition.ancestors))
        click.echo(
            f"note: each run after the first waits for a success of {names} after the run "
            f"before it started (ancestors are obeyed); to rerun the DAG, backfill its root"
        )
