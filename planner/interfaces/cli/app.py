"""The ``planner`` command line: a thin layer over the registry loader, the store and the core.

Each command parses its arguments, calls ``registry``/``planner`` code and hands the result to
``planner.interfaces.terminal``. Nothing here decides anything a driver or the core should
decide.

Exit codes (SPEC): 0 ok; 1 user error — a bad definition, an unknown process or run, a bad option
value, a database URL that cannot be opened; 2 internal error. ``PlannerGroup`` maps exceptions
to these codes in one place: ``PlannerError`` and click's usage errors print one clean message
(no traceback); any other exception prints ``internal error: ...`` and its traceback only with
``-v``. A job that fails is not a CLI error: ``planner run`` reports it and exits 0.

The wall clock is read here, at the edge, and passed to the store and the core as ``now``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click
import yaml

from planner.interfaces.terminal import render
from registry.definitions.durations import parse_duration
from registry.errors import PlannerError, ProcessNotFound
from registry.lifecycle import RunStatus
from registry.records import ErrorInfo, RequestKind
from registry.storage.store import Store, open_store, resolve_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from planner.core.planner import Planner
    from planner.live.cluster import Connection
    from planner.live.loop import LiveDriver
    from planner.simulation.simulate import Outcome
    from registry.model import RegistryDef

__all__ = ["cli", "main"]

log = logging.getLogger("planner.interfaces.cli.app")

_FORMATS = click.Choice(["table", "json"])
_SIMULATED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT)
_STATUS_WINDOW = timedelta(days=1)  # ``planner status`` lists failed attempts of the last day


def _utcnow() -> datetime:
    return datetime.now(UTC)


# -- errors and exit codes ----------------------------------------------------------------------


class UserError(click.ClickException):
    """Bad input: one clean line (or the list of definition problems) on stderr, exit 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class InternalError(click.ClickException):
    """A bug or an unexpected environment failure: exit 2, the traceback only with ``-v``."""

    exit_code = 2

    def __init__(self, exc: BaseException, *, verbose: bool) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.original = exc
        self.verbose = verbose

    def show(self, file: IO[Any] | None = None) -> None:
        if self.verbose:
            click.echo("".join(traceback.format_exception(self.original)).rstrip(), err=True)
        click.echo(f"internal error: {self.format_message()}", err=True)
        if not self.verbose:
            click.echo("(run with -v to see the traceback)", err=True)


class _BadUsage(click.UsageError):
    """click's usage errors exit 2, which the SPEC reserves for internal errors: ours exit 1."""

    exit_code = 1


@contextmanager
def _exit_codes(ctx: click.Context | None) -> Iterator[None]:
    try:
        yield
    except click.UsageError as exc:
        if isinstance(exc, _BadUsage):
            raise
        raise _BadUsage(exc.format_message(), exc.ctx) from exc
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except PlannerError as exc:
        raise UserError(str(exc)) from exc
    except OSError as exc:
        if exc.errno == errno.EPIPE:  # `planner history | head`: click handles it quietly
            raise
        raise InternalError(exc, verbose=_verbose(ctx)) from exc
    except Exception as exc:
        raise InternalError(exc, verbose=_verbose(ctx)) from exc


def _verbose(ctx: click.Context | None) -> bool:
    env = ctx.find_object(_Env) if ctx is not None else None
    return env is not None and env.verbose > 0


class PlannerGroup(click.Group):
    """A group that maps every exception to the SPEC's exit codes, for all its commands."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _exit_codes(parent):
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _exit_codes(ctx):
            return super().invoke(ctx)


# -- shared state and parameter types -----------------------------------------------------------


@dataclass(slots=True)
class _Env:
    url: str | None
    verbose: int
    _store: Store | None = None

    def store(self) -> Store:
        """The store, opened on first use (``validate``/``simulate`` never open it)."""
        if self._store is None:
            from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

            try:
                self._store = open_store(self.url)
            except (ArgumentError, NoSuchModuleError, OperationalError) as exc:
                reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                raise UserError(f"cannot open the database: {reason}") from exc
            click.get_current_context().call_on_close(self._store.close)
        return self._store


class _TimeType(click.ParamType):
    """ISO-8601 (naive: in the registry's timezone) or ``now`` (converted to ``None``)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, datetime):
            return value
        text = str(value).strip()
        if text.lower() == "now":
            return None
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{value!r} is not 'now' or an ISO-8601 time like 2026-03-02T06:00", param, ctx
            )


class _DurationType(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _SinceType(click.ParamType):
    """A duration back from now (``1d``) or an ISO-8601 time."""

    name = "DURATION|TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta | datetime):
            return value
        try:
            return parse_duration(str(value))
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is neither a duration (1d, 6h) nor an ISO-8601 time", param, ctx)


TIME = _TimeType()
DURATION = _DurationType()
SINCE = _SinceType()


def _resolve(at: datetime | None, tz: tzinfo, now: datetime) -> datetime:
    """A parsed ``TIME`` as aware UTC: ``None`` is ``now``; naive is in the registry's timezone."""
    if at is None:
        return now
    if at.tzinfo is None:
        at = at.replace(tzinfo=tz)
    return at.astimezone(UTC)


def _zone(registry: RegistryDef) -> tzinfo:
    from planner.core.schedule import zone

    return zone(registry.timezone)


def _format_option(f: Any) -> Any:
    return click.option(
        "--format",
        "fmt",
        type=_FORMATS,
        default="table",
        show_default=True,
        help="Human table or JSON document.",
    )(f)


def _require(registry: RegistryDef, process: str) -> None:
    if process not in registry.processes:
        raise ProcessNotFound(process)


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


# -- the group ----------------------------------------------------------------------------------


@click.group(cls=PlannerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "url",
    metavar="URL",
    default=None,
    help="SQLAlchemy database URL [default: $PLANNER_DB, else sqlite:///planner.db].",
)
@click.option("-v", "--verbose", count=True, help="Log more (-vv: debug); tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, url: str | None, verbose: int) -> None:
    """A dynamic planner for batch processes on Dask."""
    ctx.obj = _Env(url=url, verbose=verbose)
    if verbose:
        from rich.logging import RichHandler

        handler = RichHandler(console=render.console(stderr=True), show_path=False)
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO, handlers=[handler]
        )
        log.debug("database %s", resolve_url(url))


def main() -> None:
    """The console script ``planner``."""
    cli(prog_name="planner")


pass_env = click.make_pass_decorator(_Env)


# -- registry -----------------------------------------------------------------------------------


@cli.command()
@click.argument("files", nargs=-1, required=True)
def validate(files: Sequence[str]) -> None:
    """Validate registry FILES; print every problem and exit 1 if there is any."""
    from registry.definitions.loader import load_files
    from registry.errors import DefinitionError

    try:
        registry = load_files(files)
    except DefinitionError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        count = len(exc.problems)
        raise UserError(f"{count} problem{'s' if count != 1 else ''} found") from exc
    click.echo(f"ok: {len(registry.processes)} processes in {len(files)} files")


@cli.command()
@click.argument("files", nargs=-1, required=True)
@pass_env
def apply(env: _Env, files: Sequence[str]) -> None:
    """Validate FILES and apply them to the database atomically."""
    from registry.definitions.loader import load_files

    registry = load_files(files)
    result = env.store().apply(registry, now=_utcnow())
    for line in render.apply_lines(result):
        click.echo(line)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of registry files."""
    from registry.definitions.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@cli.command()
@click.argument("files", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid"]), default="dot")
@pass_env
def graph(env: _Env, files: Sequence[str], fmt: str) -> None:
    """Export the dependency graph (from FILES, else the database) as DOT or Mermaid."""
    if files:
        from registry.definitions.loader import load_files

        registry = load_files(files)
    else:
        registry, _ = env.store().load_registry()
    click.echo(render.graph_dot(registry) if fmt == "dot" else render.graph_mermaid(registry))


# -- planning -----------------------------------------------------------------------------------


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
@pass_env
def run(
    env: _Env,
    files: Sequence[str],
    scheduler: str | None,
    slots: int | None,
    until_idle: bool,
    span: timedelta | None,
    processes: bool,
    workers: int | None,
    dashboard_address: str,
    page_port: int,
) -> None:
    """Apply FILES (if given), then plan and execute on Dask until stopped (Ctrl-C)."""
    from planner.live.loop import run_planner

    store = env.store()
    if files:
        from registry.definitions.loader import load_files

        for line in render.apply_lines(store.apply(load_files(files), now=_utcnow())):
            click.echo(line)

    def on_ready(driver: LiveDriver, conn: Connection) -> Callable[[], None]:
        from planner.interfaces.page import serve

        click.echo(f"dashboard: {conn.dashboard or 'not available'}")
        page = serve(driver, conn, port=page_port)
        click.echo(f"planner page: {page.url}")
        stop_display = render.live_display(driver)  # a no-op unless stdout is a terminal

        def cleanup() -> None:
            stop_display()
            page.close()

        return cleanup

    began = _utcnow()
    try:
        summary = run_planner(
            store,
            scheduler=scheduler,
            slots=slots,
            until_idle=until_idle,
            duration=span,
            processes=processes,
            n_workers=workers,
            dashboard_address=dashboard_address,
            on_ready=on_ready,
            cwd=os.getcwd(),
        )
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        raise SystemExit(130) from None
    failed = [(p, r, a) for p, r, a, status, _ in summary.runs if status in render.FAILED]
    errors = _errors_of(store, failed, since=began)
    render.show(render.run_summary_view(summary.runs, summary.started, errors))


def _errors_of(
    store: Store, failed: Sequence[tuple[str, str, int]], *, since: datetime
) -> dict[tuple[str, int], ErrorInfo]:
    """The recorded error of each failed (process, run id, attempt) queued since ``since``."""
    wanted = {(run_id, attempt) for _, run_id, attempt in failed}
    return {
        (a.run_id, a.attempt): a.error
        for process in sorted({p for p, _, _ in failed})
        for a in store.history(process, since=since)
        if (a.run_id, a.attempt) in wanted and a.error is not None
    }


@cli.command()
@click.option("--at", "at", type=TIME, help="ISO-8601 time (naive: registry timezone) or now.")
@click.option("--slots", type=click.IntRange(min=1), help="Slots to plan for.")
@_format_option
@pass_env
def plan(env: _Env, at: datetime | None, slots: int | None, fmt: str) -> None:
    """One dry-run tick from the database state: start or wait, with reasons."""
    store = env.store()
    registry, applied = store.load_registry()
    tz = _zone(registry)
    when = _resolve(at, tz, _utcnow())
    decisions = _dry_run_core(store, registry, applied, when, slots).plan(when)
    if fmt == "json":
        render.emit_json(render.plan_json(when, decisions, tz))
    else:
        render.show(render.plan_table(when, decisions, tz))


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
@_format_option
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
    tz = _zone(registry)
    begin = _resolve(start, tz, _utcnow().replace(second=0, microsecond=0))
    outcomes = _read_outcomes(durations_file, registry) if durations_file else None
    sim = run_simulation(
        registry,
        start=begin,
        until=begin + span,
        slots=slots or registry.slots or os.cpu_count() or 1,
        outcomes=outcomes,
    )
    if fmt == "json":
        render.emit_json(render.simulation_json(sim, tz))
    else:
        render.show(render.simulation_view(sim, tz))


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
@_format_option
@pass_env
def explain(env: _Env, process: str, at: datetime | None, fmt: str) -> None:
    """Why PROCESS is or is not running, and when it next could."""
    store = env.store()
    registry, applied = store.load_registry()
    _require(registry, process)
    tz = _zone(registry)
    when = _resolve(at, tz, _utcnow())
    explanation = _dry_run_core(store, registry, applied, when, None).explain(process, when)
    decisions = store.decisions(process, limit=10)
    attempts = store.history(process, limit=5)
    if fmt == "json":
        render.emit_json(render.explanation_json(explanation, decisions, attempts, tz))
    else:
        render.show(render.explanation_view(explanation, decisions, attempts, tz))


# -- watching -----------------------------------------------------------------------------------


@cli.command()
@_format_option
@pass_env
def status(env: _Env, fmt: str) -> None:
    """Registry summary, runs in flight and recent failures."""
    store = env.store()
    registry, _ = store.load_registry()
    tz = _zone(registry)
    since = _utcnow() - _STATUS_WINDOW
    recent = store.history(since=since, limit=500)
    failures = [a for a in recent if a.status in render.FAILED][:20]
    active = store.active_runs()
    if fmt == "json":
        render.emit_json(render.status_json(registry, active, failures, tz))
    else:
        render.show(render.status_view(registry, active, failures, tz, failures_since=since))


@cli.command()
@click.argument("process", required=False)
@click.option("--since", type=SINCE, help="A duration back from now (1d) or an ISO-8601 time.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@_format_option
@pass_env
def history(
    env: _Env,
    process: str | None,
    since: timedelta | datetime | None,
    limit: int,
    fmt: str,
) -> None:
    """Past attempts, newest first (one entry per attempt)."""
    store = env.store()
    registry, _ = store.load_registry()
    tz = _zone(registry)
    now = _utcnow()
    start = now - since if isinstance(since, timedelta) else None
    if isinstance(since, datetime):
        start = _resolve(since, tz, now)
    attempts = store.history(process, since=start, limit=limit)
    if process is not None and not attempts:
        _require(registry, process)  # a removed process with history still shows it
    if fmt == "json":
        render.emit_json(render.history_json(attempts, tz))
    elif attempts:
        render.show(render.attempts_table(attempts, tz))
    else:
        click.echo("no runs")


# -- operating ----------------------------------------------------------------------------------


def _existing(store: Store, process: str) -> None:
    registry, _ = store.load_registry()
    _require(registry, process)


@cli.command()
@click.argument("process")
@click.option("--params", "params_text", metavar="JSON", help="A JSON object of extra params.")
@click.option("--force", is_flag=True, help="Also bypass the ancestors rule.")
@pass_env
def trigger(env: _Env, process: str, params_text: str | None, force: bool) -> None:
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
        RequestKind.TRIGGER, at=_utcnow(), process=process, params=params, force=force
    )
    forced = " (forced past its ancestors)" if force else ""
    click.echo(f"request {request}: trigger {process!r}{forced}")


@cli.command()
@click.argument("run_id")
@pass_env
def cancel(env: _Env, run_id: str) -> None:
    """Cancel run RUN_ID (queued, running or waiting to retry)."""
    store = env.store()
    process = store.run_process(run_id)
    if run_id not in {r.run_id for r in store.active_runs()}:
        raise UserError(f"run {run_id!r} of {process!r} has already ended; nothing to cancel")
    request = store.add_request(RequestKind.CANCEL, at=_utcnow(), process=process, run_id=run_id)
    click.echo(f"request {request}: cancel {run_id!r} of {process!r}")


@cli.command()
@click.argument("process")
@pass_env
def hold(env: _Env, process: str) -> None:
    """Never start PROCESS until released (runs in flight continue)."""
    env.store().update_process(process, {"hold": True})
    click.echo(f"held {process!r}")


@cli.command()
@click.argument("process")
@pass_env
def release(env: _Env, process: str) -> None:
    """Let a held PROCESS start again."""
    env.store().update_process(process, {"hold": False})
    click.echo(f"released {process!r}")


@cli.command()
@click.argument("process")
@pass_env
def reset(env: _Env, process: str) -> None:
    """Forget PROCESS's successes and failures so it may run again (history is kept)."""
    store = env.store()
    _existing(store, process)
    now = _utcnow()
    store.reset(process, at=now)
    request = store.add_request(RequestKind.RESET, at=now, process=process)
    click.echo(f"reset {process!r} (request {request})")


@cli.command(name="set")
@click.argument("process")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@pass_env
def set_fields(env: _Env, process: str, assignments: Sequence[str]) -> None:
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
        click.echo(f"{process}.{key}: {render.value_text(getattr(definition, key))}")


if __name__ == "__main__":
    main()
