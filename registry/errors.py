"""Errors of dask-planner.

    PlannerError                      base of everything raised on purpose
    ├── DefinitionError(ValueError)   the user's YAML (or a ``planner set`` value) is wrong;
    │                                 carries every ``Problem`` found (file, line, process,
    │                                 template and item), said grouped (``group_problems``)
    ├── ProcessNotFound(LookupError)  a command named a process the registry does not have
    ├── RunNotFound(LookupError)      a command named a run id the store does not have
    ├── NoDatabase(LookupError)       a command that only reads found no database to read
    ├── UnsupportedDatabase(ValueError)  a database URL this planner cannot use (or none)
    ├── InvalidRequest(ValueError)    an operator's request is malformed (``trigger`` params that
    │                                 are not a JSON object of finite numbers, an empty change)
    ├── Conflict(RuntimeError)        a request that cannot be carried out as asked now (``reset``
    │                                 while a run is in flight): the message says what to do
    ├── IllegalTransition(RuntimeError)  a run status change the lifecycle table forbids
    ├── SchemaMismatch(RuntimeError)  the database's schema is at another revision than this
    │                                 planner's: older (``planner db upgrade``) or unknown to it
    └── LeaseLost(RuntimeError)       this planner's lease was taken over (it was paused or cut
                                      off past its timeout): it may no longer write

Runtime failures of jobs (a callable raised, a command exited non-zero) are not exceptions of the
planner: they are recorded on the attempt (``ErrorInfo``) and handled by retry policy.

Many processes often fail the same way — 700 processes naming a module that does not import, the
2,000 items of a template with one bad field — and 700 lines say less than one. So problems are
said grouped: ``group_problems`` gathers the problems of at least ``GROUP_AT`` processes that have
the same message at the same key (relative to each process; for a template's items, the same key
of the template) into one ``ProblemGroup``, printed once with the count, the file and line of the
first, and the first ``NAMES_SHOWN`` names. Fewer alike stay one line each, with their own line.
The items of a template are alike when their messages are the same once each item's filled-in
texts are put back as placeholders (``Problem.pattern``): ``run: "nosuch_{item}:go"`` over 700
items is one group, said with the placeholders (``cannot import module 'nosuch_{item}'``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: how many processes must share a problem for it to be said once, as a group
GROUP_AT = 4
#: how many names a group (or a long list of names) shows before "… and N more"
NAMES_SHOWN = 5


class PlannerError(Exception):
    """Base class for every error dask-planner raises on purpose."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong with a definition, located as precisely as we can.

    A problem of a template's process names the template and the item too (``process`` is then
    ``TEMPLATE.ITEM``); one of the template as a whole (its ``foreach``) has ``template`` and no
    ``process``."""

    file: str
    line: int | None
    process: str | None
    message: str
    path: str = ""  # key path inside the document, e.g. "processes.build.retries"
    template: str | None = None
    item: str | None = None
    #: a template's process: the message with the texts its item filled in put back as their
    #: placeholders (``unknown pool 'pool_{item}'``), when that changes it
    pattern: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.template is not None and self.item is not None:
            who = f" process {self.process!r} (template {self.template!r}, item {self.item!r}):"
        elif self.template is not None:
            who = f" template {self.template!r}:"
        else:
            who = f" process {self.process!r}:" if self.process else ""
        at = f" ({self.path})" if self.path else ""
        return f"{where}:{who} {self.message}{at}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProblemGroup:
    """The same problem of many processes (at least ``GROUP_AT``), said once.

    ``key`` is where it is inside each process (``run``, ``params.table``); for the items of one
    template, all at the same place of the template, the full path of that place."""

    problems: tuple[Problem, ...]
    key: str

    @property
    def first(self) -> Problem:
        return self.problems[0]

    @property
    def message(self) -> str:
        """What the problems say: their message, or, when it differs by item, its pattern."""
        first = self.first
        if first.pattern is None or all(p.message == first.message for p in self.problems):
            return first.message
        return first.pattern

    def __str__(self) -> str:
        first = self.first
        where = first.file if first.line is None else f"{first.file}:{first.line}"
        count = len(self.problems)
        if first.template is not None and first.item is not None:
            items = name_list([p.item or "" for p in self.problems])
            who = f"template {first.template!r}, {count} items ({items})"
            at = f" ({self.key})" if self.key else ""
        else:
            who = f"{count} processes ({name_list([p.process or '' for p in self.problems])})"
            at = f" (key {self.key})" if self.key else ""
        return f"{where}: {who}: {self.message}{at}"


def name_list(names: Sequence[str], shown: int = NAMES_SHOWN) -> str:
    """``a, b, c`` — or, past ``shown`` names by more than one, ``a, b, c, d, e, … and 7 more``."""
    if len(names) <= shown + 1:
        return ", ".join(names)
    return f"{', '.join(names[:shown])}, … and {len(names) - shown} more"


def group_problems(problems: Iterable[Problem]) -> list[Problem | ProblemGroup]:
    """``problems`` in their order, those alike of at least ``GROUP_AT`` processes as one group
    where the first of them was."""
    ordered = list(problems)
    alike: dict[tuple[str | None, str, str], list[Problem]] = {}
    for problem in ordered:
        key = _group_key(problem)
        if key is not None:
            alike.setdefault(key, []).append(problem)
    out: list[Problem | ProblemGroup] = []
    said: set[tuple[str | None, str, str]] = set()
    for problem in ordered:
        key = _group_key(problem)
        members = alike.get(key) if key is not None else None
        if key is None or members is None or len(members) < GROUP_AT:
            out.append(problem)
        elif key not in said:
            said.add(key)
            out.append(ProblemGroup(problems=tuple(members), key=key[2]))
    return out


def _group_key(problem: Problem) -> tuple[str | None, str, str] | None:
    """(template, message, key) of a process's problem; ``None`` for one of a file or template.

    The items of a template are alike at the same path of the template, with the same pattern
    (placeholders put back); other processes at the same key inside each (``processes.NAME.``
    left out)."""
    if problem.process is None:
        return None
    if problem.template is not None and problem.item is not None:
        return problem.template, problem.pattern or problem.message, problem.path
    prefix = f"processes.{problem.process}"
    path = problem.path
    if path == prefix:
        path = ""
    elif path.startswith(prefix) and path[len(prefix)] in ".[":
        path = path[len(prefix) :].removeprefix(".")
    return None, problem.message, path


class DefinitionError(PlannerError, ValueError):
    """The registry definition is invalid; nothing was applied."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the registry"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.grouped()))

    def grouped(self) -> list[Problem | ProblemGroup]:
        """The problems as they are said: alike ones of many processes as one group."""
        return group_problems(self.problems)


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


class InvalidRequest(PlannerError, ValueError):
    """An operator's request (command line or HTTP API) that cannot be read as asked."""


class Conflict(PlannerError, RuntimeError):
    """A request that is well formed but cannot be carried out in the current state; the message
    says what to do instead (``reset`` of a process while a run of it is in flight)."""


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
