"""The ``planner`` group: global options, the shared environment, and exit codes for every command.

Exit codes (SPEC): 0 ok; 1 user error — a bad definition, an unknown process or run, a bad option
value, a database URL that cannot be opened or that we do not support, no database for a command
that only reads one; 2 internal error. ``PlannerGroup`` maps exceptions
to these codes in one place: ``PlannerError`` and click's usage errors print one clean message
(no traceback); any other exception prints ``internal error: ...`` and its traceback only with
``-v``. A job that fails is not a CLI error: ``planner run`` reports it and exits 0.

The command modules register on ``cli`` and take the ``Env`` with ``pass_env``; the store is
opened on first use, and created if missing only by the commands that write a registry
(``apply``, ``run``): the others say that there is no database, and create none. The wall
clock is read here (``utcnow``), at the edge, and passed to the store and the core as ``now``.
``-v`` shows the planner's own log records (``configure_logging``), its decision log among them.
"""

from __future__ import annotations

import errno
import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import click

from planner.interfaces.terminal import console
from registry.errors import PlannerError

if TYPE_CHECKING:  # the store (SQLAlchemy, Alembic) is imported by the commands that open it
    from registry.storage.store import Store

__all__ = [
    "Env",
    "InternalError",
    "PlannerGroup",
    "UserError",
    "cli",
    "configure_logging",
    "main",
    "pass_env",
    "utcnow",
]

log = logging.getLogger("planner.interfaces.cli.app")


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """``registry.storage.store.open_store``, imported when a command first opens the store:
    ``validate``, ``schema`` and ``simulate`` do not pay for SQLAlchemy and Alembic."""
    from registry.storage.store import open_store as open_database

    return open_database(url, create=create)


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
    env = ctx.find_object(Env) if ctx is not None else None
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


# -- shared state ------------------------------------------------------------------------------


@dataclass(slots=True)
class Env:
    """What every command shares: the global options, and the store once a command asks for it."""

    url: str | None
    verbose: int
    _store: Store | None = None

    def store(self, *, create: bool = False) -> Store:
        """The store, opened on first use (``validate``/``simulate`` never open it); ``create``
        makes a missing database (``apply``, ``run``), else it is ``NoDatabase`` (exit 1)."""
        if self._store is None:
            from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

            try:
                self._store = open_store(self.url, create=create)
            except (ArgumentError, NoSuchModuleError, OperationalError) as exc:
                reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                raise UserError(f"cannot open the database: {reason}") from exc
            click.get_current_context().call_on_close(self._store.close)
        return self._store


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
    ctx.obj = Env(url=url, verbose=verbose)
    if verbose:
        from registry.storage.store import resolve_url

        ctx.call_on_close(configure_logging(verbose))
        log.debug("database %s", resolve_url(url))


#: the loggers ``-v`` shows: the planner's own (its decision log included)
_OWN_LOGGERS = ("planner", "registry")


class PlainFormatter(logging.Formatter):
    """``2026-01-02T03:04:05.678Z INFO  message``: the time in ISO-8601, in UTC (as in the
    attempts' logs), the level padded to 5 characters, the message; one line, no padding."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


class _StderrHandler(logging.StreamHandler[Any]):
    """Plain lines on ``sys.stderr`` as it is when the record comes (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        import sys

        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:  # logging.StreamHandler sets it; sys.stderr rules
        pass


def _on_terminal() -> bool:
    import sys

    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def configure_logging(verbose: int) -> Callable[[], None]:
    """``-v``: the planner's own records at INFO (``-vv``: DEBUG) on stderr; returns the
    function that undoes it. On a terminal through rich (time, level, message, in columns);
    otherwise — a pipe, a file, a service's journal — as plain lines (``PlainFormatter``), so
    that what reads them gets one record per line, with an ISO-8601 time, unpadded.

    The handler goes on the planner's loggers, not on the root logger: Dask gives its loggers a
    handler and format of its own (``distributed.admin.log-format``) only when the root logger
    has none, so a handler there would print Dask's records a second way (the doubled
    ``INFO INFO:distributed…`` prefix). Dask's loggers keep their own format and levels."""
    handler: logging.Handler
    if _on_terminal():
        from rich.logging import RichHandler

        handler = RichHandler(console=console(stderr=True), show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))  # rich shows time and level
    else:
        handler = _StderrHandler()
        handler.setFormatter(PlainFormatter())
    level = logging.DEBUG if verbose > 1 else logging.INFO
    loggers = [logging.getLogger(name) for name in _OWN_LOGGERS]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
        logger.addHandler(handler)

    def undo() -> None:
        for logger, old in zip(loggers, before, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(old)

    return undo


def main() -> None:
    """The console script ``planner``."""
    cli(prog_name="planner")


pass_env = click.make_pass_decorator(Env)
