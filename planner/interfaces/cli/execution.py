"""``planner run``: apply FILES if given, then plan and execute on Dask until stopped.

The command only wires things together: the live driver (``planner.live.runner.run_planner``) does
the work; the HTTP API is served from the start (``serving.start_api_for``), standing by
included; a ``cluster:`` line is printed the moment the cluster is up, before the planner loads
what it plans from (the time from it to the first start is the planner's own start, which
``benchmarks/bench_startup.py`` measures); ``on_ready`` starts the planner page, the terminal
status line and the API's metrics once the driver exists (with ``-v``, the decision log too:
``planner.live.decision_log``). The summary at the end (``run_report``) is the store's record of
the attempts this planner saw end, so it agrees with ``planner history``, and names the error of
each that failed. A job that fails is not a CLI error: ``run`` reports it and exits 0; Ctrl-C
exits 130. ``--adapt`` is for the in-process cluster only: it is refused with ``--scheduler`` (a
remote cluster adapts by its own deployment) and with ``--workers`` (it sizes the cluster
itself).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

from planner.interfaces.cli.app import Env, cli, pass_env, utcnow
from planner.interfaces.cli.params import ADAPT, DURATION
from planner.interfaces.cli.serving import api_address_option, start_api_for
from planner.interfaces.terminal import (
    FinishedAttempt,
    RunReport,
    live_display,
    run_summary_view,
    show,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from planner.live.cluster import Adapt, Connection
    from planner.live.loop import LiveDriver
    from planner.live.recording import Summary
    from registry.storage.store import Store

__all__ = ["run"]


@cli.command()
@click.argument("files", nargs=-1)
@click.option("--scheduler", metavar="ADDR", help="Use this Dask scheduler instead of a local one.")
@click.option("--slots", type=click.IntRange(min=1), help="Concurrent runs (overrides registry).")
@click.option("--until-idle", is_flag=True, help="Exit when nothing runs and nothing can start.")
@click.option("--for", "span", type=DURATION, help="Stop after this long (e.g. 2h).")
@click.option(
    "--local-processes/--local-threads",
    "processes",
    default=True,
    show_default=True,
    help="Local cluster workers as processes or as threads of this process.",
)
@click.option("--workers", type=click.IntRange(min=1), help="Local cluster workers.")
@click.option(
    "--adapt",
    type=ADAPT,
    help="Local cluster adapts between MIN and MAX workers (e.g. 1:4); slots default to MAX"
    " workers' threads, so ready runs queue on Dask and it scales up. A remote adaptive"
    " cluster: give --slots instead.",
)
@click.option(
    "--dashboard-address",
    default="127.0.0.1:8787",
    show_default=True,
    help="Local cluster dashboard address (:0 for any free port).",
)
@click.option(
    "--page-port",
    type=click.IntRange(min=0),
    default=8788,
    show_default=True,
    help="Port of the planner page when it cannot live in the Dask dashboard (remote scheduler).",
)
@api_address_option
@click.option(
    "--allow-reruns",
    is_flag=True,
    help="Accept a scheduler whose distributed.scheduler.allowed-failures is not 0 (warns).",
)
@click.option(
    "--lease-timeout",
    type=DURATION,
    default="15s",
    show_default=True,
    help="A standby takes over this long after the lease holder last renewed.",
)
@click.option(
    "--db-outage-limit",
    type=DURATION,
    default="5m",
    show_default=True,
    help="Give up when the database stays unreachable this long.",
)
@pass_env
def run(
    env: Env,
    files: Sequence[str],
    scheduler: str | None,
    slots: int | None,
    until_idle: bool,
    span: timedelta | None,
    processes: bool,
    workers: int | None,
    adapt: Adapt | None,
    dashboard_address: str,
    page_port: int,
    api_address: str | None,
    allow_reruns: bool,
    lease_timeout: timedelta,
    db_outage_limit: timedelta,
) -> None:
    """Apply FILES (if given), then plan and execute on Dask until stopped (Ctrl-C)."""
    from planner.live.runner import run_planner

    if adapt is not None and scheduler:
        raise click.UsageError(
            "--adapt sizes the in-process cluster; a remote cluster (--scheduler) adapts by its"
            " own deployment: give the planner --slots or the registry's slots: instead"
        )
    if adapt is not None and workers:
        raise click.UsageError("--adapt sizes the in-process cluster itself: drop --workers")
    store = env.store(create=True)
    if files:  # validated and applied unless they are the files last applied, unchanged
        from planner.interfaces.cli.definitions import apply_files

        apply_files(store, files, revalidate=False)
    api = start_api_for(env, api_address)  # served while standing by too; stops with the command

    def on_ready(driver: LiveDriver, conn: Connection) -> Callable[[], None]:
        from planner.interfaces.page import serve

        click.echo(f"dashboard: {conn.dashboard or 'not available'}")
        page = serve(driver, conn, port=page_port)
        click.echo(f"planner page: {page.url}")
        stop_display = live_display(driver)  # a no-op unless stdout is a terminal
        if env.verbose:  # the decision log: a line per start, and why the best waiting one waits
            from planner.live.decision_log import DecisionLog

            driver.listeners.append(DecisionLog().on_step)
        detach_metrics = api.metrics.attach(driver)  # this planner leads now: planner_leader 1

        def cleanup() -> None:
            detach_metrics()
            stop_display()
            page.close()

        return cleanup

    def on_connected(conn: Connection) -> None:
        from planner.live.runner import cluster_text

        click.echo(f"cluster: {cluster_text(conn)}")

    began = utcnow()
    try:
        summary = run_planner(
            store,
            scheduler=scheduler,
            slots=slots,
            until_idle=until_idle,
            duration=span,
            processes=processes,
            n_workers=workers,
            adapt=adapt,
            dashboard_address=dashboard_address,
            on_ready=on_ready,
            on_connected=on_connected,
            cwd=os.getcwd(),
            lease_timeout=lease_timeout,
            db_outage_limit=db_outage_limit,
            say=lambda message: click.echo(message, err=True),
            allow_reruns=allow_reruns,
        )
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        raise SystemExit(130) from None
    if summary.stopped_by == "signal":
        click.echo("stopped: runs in flight were cancelled or left to the next planner", err=True)
    show(run_summary_view(run_report(store, summary, since=began)))


def run_report(store: Store, summary: Summary, *, since: datetime) -> RunReport:
    """The attempts ``summary`` saw end, as the store recorded them (what ``history`` shows):
    those queued since ``since`` (when this planner began) and those it took over from an
    earlier planner. An attempt the store does not have ended (its end could not be written)
    keeps what the driver saw."""
    ended = {(run_id, attempt) for _, run_id, attempt, _, _ in summary.runs}
    earliest = min([since, *summary.inherited.values()])
    recorded = {
        (a.run_id, a.attempt): a
        for a in store.history(since=earliest)
        if (a.run_id, a.attempt) in ended and a.status.terminal
    }
    registry, _ = store.load_registry()
    attempts: dict[tuple[str, int], FinishedAttempt] = {}
    for process, run_id, attempt, status, duration in summary.runs:
        definition = registry.processes.get(process)
        key = (run_id, attempt)
        record = recorded.get(key)
        attempts[key] = FinishedAttempt(
            process=process,
            run_id=run_id,
            attempt=attempt,
            status=record.status.value if record else status,
            duration_s=record.duration_s if record else duration,
            error=record.error if record else None,
            inherited=key in summary.inherited,
            template=definition.template if definition is not None else None,
        )
    return RunReport(
        attempts=tuple(attempts.values()),
        started=summary.started,
        ahead=summary.ahead,
        retries_cancelled=tuple(sorted(run_id for run_id, _ in summary.retries_cancelled)),
    )
