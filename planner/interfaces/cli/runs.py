"""The commands that look into one run or one process: ``show`` and ``logs``.

``show RUN_ID`` prints a run with its params, each attempt's outcome and result, and the tail
of the latest attempt's log; ``show PROCESS`` a process's effective settings (after the file's
defaults, templates, ``planner set`` and SQL edits: what the planner loads), its saved state and
why it runs or waits now. ``logs RUN_ID`` prints an attempt's whole captured log; ``--follow``
keeps printing what the running planner writes of it (about once a second while it runs) until
the attempt ends (exit 0) — or until no planner holds the database's lease any more (it stopped,
or died and its lease ran out): nothing would end the attempt then, so it says so and exits 1.
A planner's end of the attempt is written before it gives the lease up, so the attempt is read
again after the lease is seen gone: an attempt that just ended is never taken for abandoned.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from planner.interfaces.cli.app import Env, UserError, cli, pass_env, utcnow
from planner.interfaces.cli.params import format_option, timezone_of
from planner.interfaces.dry_run import dry_run_core
from planner.interfaces.terminal.run_views import (
    process_document,
    process_lines,
    run_document,
    run_lines,
)
from planner.interfaces.terminal.style import emit_json
from registry.errors import RunNotFound

if TYPE_CHECKING:  # the store is imported by the commands that open it (``app``)
    from registry.storage.store import Store

#: seconds between two looks at a followed log
FOLLOW_POLL_S = 0.5


def _after(shown: str, text: str) -> str:
    """What ``text`` adds to ``shown``; a bounded log drops its start once full, so the end of
    what was shown is looked for in the new text."""
    if text.startswith(shown):
        return text[len(shown) :]
    mark = shown[-256:]
    at = text.rfind(mark) if mark else -1
    return text[at + len(mark) :] if at >= 0 else text


@cli.command()
@click.argument("name", metavar="PROCESS|RUN_ID")
@format_option
@pass_env
def show(env: Env, name: str, fmt: str) -> None:
    """A run (params, result, attempts, log tail) or a process (settings, state, now)."""
    store = env.store()
    registry, applied = store.load_registry()
    tz = timezone_of(registry)
    if name in registry.processes or name in registry.invalid:
        now = utcnow()
        definition = registry.processes.get(name)
        explanation = None
        if definition is not None:
            explanation = dry_run_core(store, registry, applied, now, None).explain(name, now)
        document = process_document(
            definition,
            registry.invalid.get(name),
            store.load_state(name),
            explanation,
            store.history(name, limit=5),
            tz,
        )
        if fmt == "json":
            emit_json(document)
        else:
            for line in process_lines(name, document):
                click.echo(line)
        return
    try:
        run = store.run(name)
    except RunNotFound:
        raise click.ClickException(
            f"no process or run named {name!r} (`planner status` lists processes, "
            "`planner history` runs)"
        ) from None
    attempts = [store.attempt_log(name, n) for n in range(1, run.attempt + 1)]
    if fmt == "json":
        emit_json(run_document(run, attempts, tz))
    else:
        for line in run_lines(run, attempts, tz):
            click.echo(line)


@cli.command()
@click.argument("run_id")
@click.option("--attempt", type=click.IntRange(min=1), help="Which attempt [default: the last].")
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the attempt runs.")
@pass_env
def logs(env: Env, run_id: str, attempt: int | None, follow: bool) -> None:
    """The captured log of RUN_ID's attempt: its logging records, stdout and stderr."""
    store = env.store()
    record = store.attempt_log(run_id, attempt)
    shown = record.log or ""
    click.echo(shown, nl=False)
    while follow and record.end is None:
        time.sleep(FOLLOW_POLL_S)  # the planner writes the log as it comes (polling the store)
        led = _planner_alive(store)  # before the attempt: see the module's docstring
        record = store.attempt_log(run_id, record.attempt)
        text = record.log or ""
        new = _after(shown, text)
        if new:
            click.echo(new, nl=False)
        shown = text
        if record.end is None and not led:
            raise UserError(
                f"attempt {record.attempt} of {run_id} has not ended and no planner holds the "
                "lease: stopped following (the next `planner run` on this database takes the "
                "run over; `planner status` shows the planners)"
            )
    if not follow and record.end is None and not shown:
        click.echo(f"(attempt {record.attempt} of {run_id} runs; nothing logged yet)", err=True)


def _planner_alive(store: Store) -> bool:
    """A planner holds the database's lease and has renewed it in time."""
    lease = store.lease_state()
    return lease.holder is not None and lease.expires_at is not None and lease.expires_at > utcnow()
