"""The commands that summarise and tidy the history: ``stats`` and ``purge``.

``stats`` reads the store only. ``purge`` deletes what the registry's ``retention`` (or
``--older-than``) lets go, in short transactions, never what readiness still reads
(``registry.storage.retention``); ``--dry-run`` counts and deletes nothing. A running planner
purges by itself; the command is for a database no planner runs on, or for a one-off cut.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from planner.interfaces.cli.app import Env, cli, pass_env, utcnow
from planner.interfaces.cli.params import (
    DURATION,
    SINCE,
    format_option,
    require,
    resolve,
    timezone_of,
    wide_option,
)
from planner.interfaces.terminal.figures import purge_lines, stats_json, stats_table
from planner.interfaces.terminal.style import emit_json, show
from registry.storage import retention

#: the window ``stats`` looks at without ``--since``
STATS_WINDOW = timedelta(days=7)


@cli.command()
@click.argument("process", required=False)
@click.option(
    "--since",
    type=SINCE,
    help="A duration back from now (30d) or an ISO-8601 time; default: the last 7 days.",
)
@format_option
@wide_option
@pass_env
def stats(
    env: Env, process: str | None, since: timedelta | datetime | None, fmt: str, wide: bool
) -> None:
    """Per process: runs, outcomes, success rate, duration p50/p90 and lateness p90."""
    store = env.store()
    registry, _ = store.load_registry()
    tz = timezone_of(registry)
    now = utcnow()
    if isinstance(since, datetime):
        start = resolve(since, tz, now)
    else:
        start = now - (since if since is not None else STATS_WINDOW)
    figures = store.stats(since=start, process=process)
    if process is not None and not figures:
        require(registry, process)  # a known process without runs in the window: an empty table
    if fmt == "json":
        emit_json(stats_json(figures, start, tz))
    elif figures:
        show(stats_table(figures, start, tz, now=utcnow(), wide=wide), wide=wide)
    else:
        click.echo("no runs in the window")


@cli.command()
@click.option(
    "--older-than",
    type=DURATION,
    metavar="DURATION",
    help="Purge every kind of record older than this; default: the registry's retention.",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@pass_env
def purge(env: Env, older_than: timedelta | None, dry_run: bool) -> None:
    """Delete runs, attempts, logs and decisions past their retention.

    The latest run, the latest ended and successful runs, the recent successes that estimate
    durations, and every success of a process with max_runs are kept, however old."""
    store = env.store()
    registry, _ = store.load_registry()
    cut = retention.cutoffs(registry, utcnow(), older_than)
    purged = store.purge(cut, counted=retention.counted(registry), dry_run=dry_run)
    for line in purge_lines(purged, dry_run=dry_run):
        click.echo(line)
