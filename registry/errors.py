"""Errors of dask-planner.

    PlannerError                      base of everything raised on purpose
    ├── DefinitionError(ValueError)   the user's YAML (or a ``planner set`` value) is wrong;
    │                                 carries every ``Problem`` found (file, line, process)
    ├── ProcessNotFound(LookupError)  a command named a process the registry does not have
    ├── RunNotFound(LookupError)      a command named a run id the store does not have
    ├── NoDatabase(LookupError)       a command that only reads found no database to read
    ├── UnsupportedDatabase(ValueError)  a database URL this planner cannot use (or none)
    ├── IllegalTransition(RuntimeError)  a run status change the lifecycle table forbids
    ├── SchemaMismatch(RuntimeError)  the database's schema is at another revision than this
    │                                 planner's: older (``planner db upgrade``) or unknown to it
    └── LeaseLost(RuntimeError)       this planner's lease was taken over (it was paused or cut
                                      off past its timeout): it may no longer write

Runtime failures of jobs (a callable raised, a command exited non-zero) are not exceptions of the
planner: they are recorded on the attempt (``ErrorInfo``) and handled by retry policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class PlannerError(Exception):
    """Base class for every error dask-planner raises on purpose."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong with a definition, located as precisely as we can."""

    file: str
    line: int | None
    process: str | None
    message: str
    path: str = ""  # key path inside the document, e.g. "processes.build.retries"

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        who = f" process {self.process!r}:" if self.process else ""
        at = f" ({self.path})" if self.path else ""
        return f"{where}:{who} {self.message}{at}"


class DefinitionError(PlannerError, ValueError):
    """The registry definition is invalid; nothing was applied."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the registry"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


class ProcessNotFound(PlannerError, LookupError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no process named {name!r} in the registry")

    def __str__(self) -> str:  # LookupError would wrap the message in quotes
        return str(self.args[0])


class RunNotFound(PlannerError, LookupError):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class NoDatabase(PlannerError, LookupError):
    """A read-only command (or ``planner db``) found no database at ``url``; none was created."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"no database at {url}: `planner apply FILES…` creates one")

    def __str__(self) -> str:
        return str(self.args[0])


class UnsupportedDatabase(PlannerError, ValueError):
    """A database URL that is empty, malformed, or names a database or driver we do not support."""

    SUPPORTED = (
        "sqlite:///PATH, postgresql+psycopg://USER@HOST/DB "
        "(postgresql:// and postgres:// mean the same)"
    )

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        super().__init__(f"{problem}: use {self.SUPPORTED}")


class IllegalTransition(PlannerError, RuntimeError):
    def __init__(self, run_id: str, current: str, new: str) -> None:
        self.run_id, self.current, self.new = run_id, current, new
        super().__init__(f"run {run_id!r}: cannot go from {current!r} to {new!r}")


class SchemaMismatch(PlannerError, RuntimeError):
    """The database's schema revision is not the one this planner works with.

    ``known`` tells an older revision (one of this planner's migrations, which ``planner db
    upgrade`` applies) from one this planner has never heard of (written by a newer release)."""

    def __init__(self, current: str, needed: str, *, known: bool) -> None:
        self.current, self.needed, self.known = current, needed, known
        if known:
            message = (
                f"database schema is at revision {current!r}, this planner needs {needed!r}: "
                "run `planner db upgrade`"
            )
        else:
            message = (
                f"database schema is at revision {current!r}, which this planner (it needs "
                f"{needed!r}) does not know: the planner is older than the database; "
                "upgrade dask-planner"
            )
        super().__init__(message)


class LeaseLost(PlannerError, RuntimeError):
    """A planner's write found its fencing number stale: another planner holds the lease now."""

    def __init__(self, instance: str, fence: int, holder: str | None) -> None:
        self.instance, self.fence, self.holder = instance, fence, holder
        now = f"{holder!r} holds it now" if holder else "nobody holds it now"
        super().__init__(
            f"planner {instance!r} lost the lease (fencing number {fence} is stale; {now}): "
            "it may no longer write"
        )
