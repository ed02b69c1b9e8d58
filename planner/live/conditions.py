"""Conditions ("sensors"), asked by the live driver off its loop; answers go to the core.

The core says which processes nothing but their condition holds back, and when to ask each
(``Planner.conditions_due``: at once — no answer yet, or a true one too old to start on — or
``condition_interval`` after a false answer). After every step the driver hands that to the
``ConditionWatcher`` (it is a driver listener); the watcher's own thread asks each condition
when due, on a short-lived thread per ask, and posts a ``ConditionAnswered`` event into the
driver's inbox, waking the loop. The loop thread never waits for a condition.

The answers the core took are also written to the decision log (``ConditionAnswered.logged``),
so that the shells that only read the database (``plan``, ``explain``, the HTTP API, ``planner
serve``'s page) show them: at each step the watcher adds to the driver's decision buffer every
answer that differs from the last one written, or repeats it ``REWRITTEN_AFTER`` later; the loop
writes the buffer with its decisions, at its next poll.

- ``condition: module:callable`` is called in the planner process with ``ctx`` (a
  ``ConditionContext``: process, params, now) if it takes it; a truthy return value means go.
- ``condition: {sql, db}`` runs the query on ``db`` (a SQLAlchemy URL, or the name of an
  environment variable holding one) and takes the first column of the first row; true means
  go, no row means false.
- An ask that raises counts as false, with the error as the reason's detail. One that takes
  longer than ``timeout_s`` counts as false ("timed out"), and that condition is not asked again
  until the stuck call returns (a thread cannot be killed), so stuck asks never pile up.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from planner.core.events import ConditionAnswered, Step
from registry.model import ProcessDef

if TYPE_CHECKING:
    from planner.live.loop import LiveDriver

__all__ = ["REWRITTEN_AFTER", "ConditionContext", "ConditionWatcher", "ask"]

log = logging.getLogger(__name__)

DETAIL_MAX_CHARS = 500
#: an answer the same as the last one written is written again this long after it, so the log
#: gains at most a row per condition every few minutes while nothing changes
REWRITTEN_AFTER = timedelta(minutes=5)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConditionContext:
    """What a condition callable is given as ``ctx``."""

    process: str
    params: Mapping[str, Any] = field(default_factory=dict)
    now: datetime


def _clip(text: str) -> str:
    return text if len(text) <= DETAIL_MAX_CHARS else text[: DETAIL_MAX_CHARS - 1] + "…"


def _database_url(db: str) -> str:
    if "://" in db:
        return db
    url = os.environ.get(db)
    if not url:
        raise LookupError(f"environment variable {db!r} (the condition's db) is not set")
    return url


def _ask_sql(sql: str, db: str) -> Any:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(_database_url(db), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(text(sql)).first()
        return None if row is None else row[0]
    finally:
        engine.dispose()


def _ask_callable(target: str, ctx: ConditionContext, cwd: str | None) -> Any:
    from planner.live.worker.callables import import_target

    fn = import_target(target, cwd=cwd)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: call it plainly
        return fn()
    if "ctx" in params:
        return fn(ctx=ctx)
    positional = [
        p
        for p in params.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return fn(ctx) if positional else fn()


def ask(definition: ProcessDef, now: datetime, *, cwd: str | None = None) -> tuple[bool, str]:
    """Ask ``definition``'s condition once, here: (go?, detail). Never raises."""
    condition = definition.condition
    try:
        if isinstance(condition, str):
            ctx = ConditionContext(process=definition.name, params=definition.params, now=now)
            value = _ask_callable(condition, ctx, cwd)
        elif isinstance(condition, Mapping):
            value = _ask_sql(str(condition["sql"]), str(condition["db"]))
        else:
            return True, ""
    except Exception as exc:
        return False, _clip(f"error: {type(exc).__name__}: {exc}")
    if value:
        return True, ""
    return False, _clip(f"false (it returned {value!r})")


class ConditionWatcher:
    """Asks the conditions the core wants asked, each when due; posts the answers."""

    def __init__(
        self,
        post: Callable[[ConditionAnswered], None],
        clock: Callable[[], datetime],
        *,
        cwd: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.post = post
        self.clock = clock
        self.cwd = cwd
        self.timeout_s = timeout_s
        self.asked = 0  # asks completed (answers posted)
        self._due: dict[str, tuple[datetime, ProcessDef]] = {}
        self._busy: set[str] = set()  # an ask in progress (or stuck past its timeout)
        #: when each condition last answered: a wish older than that is already answered
        self._answered: dict[str, datetime] = {}
        #: the last answer of each condition written to the decision log (loop thread only)
        self._written: dict[str, ConditionAnswered] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="planner-conditions", daemon=True)

    def start(self) -> ConditionWatcher:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def on_step(self, driver: LiveDriver, step: Step) -> None:
        """A driver listener: take the core's current wishes, and give the decision log the
        answers it took (on the loop thread; cheap)."""
        core = driver.core
        if not core.conditional:
            return
        self._log_answers(driver)
        due = core.conditions_due()
        self.update({name: (when, core.states[name].definition) for name, when in due.items()})

    def _log_answers(self, driver: LiveDriver) -> None:
        rows = []
        states, written = driver.core.states, self._written
        for name in driver.core.conditional:
            ps = states.get(name)
            answer = None if ps is None else ps.condition
            last = written.get(name)
            if answer is None or answer is last:
                continue
            if last is not None and (
                answer.at <= last.at
                or (
                    (answer.value, answer.detail) == (last.value, last.detail)
                    and answer.at - last.at < REWRITTEN_AFTER
                )
            ):
                continue
            written[name] = answer
            rows.append(answer.logged())
        if rows:
            driver.decision_buffer.extend(rows)

    def update(self, due: Mapping[str, tuple[datetime, ProcessDef]]) -> None:
        with self._lock:
            self._due = dict(due)
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = self.step(self.clock())
            self._wake.wait(wait)
            self._wake.clear()

    def step(self, now: datetime) -> float | None:
        """Start the asks due at ``now``; the seconds until the next one (``None``: none)."""
        with self._lock:
            # a wish older than the answer already given is answered: the core's next one
            # says when to ask again (kept, it would keep this thread spinning)
            for name in [n for n, (w, _) in self._due.items() if self._seen(n, w)]:
                del self._due[name]
            ready = [
                (name, d)
                for name, (when, d) in self._due.items()
                if when <= now and name not in self._busy
            ]
            for name, _ in ready:
                self._busy.add(name)
                del self._due[name]  # asked: the core says when to ask again
            later = [w for n, (w, _) in self._due.items() if n not in self._busy]
        for name, definition in ready:
            threading.Thread(
                target=self._ask, args=(name, definition), name=f"condition-{name}", daemon=True
            ).start()
        if not later:
            return None
        return max(min((w - now).total_seconds() for w in later), 0.0)

    def _seen(self, name: str, when: datetime) -> bool:
        answered = self._answered.get(name)
        return answered is not None and when <= answered

    def _ask(self, name: str, definition: ProcessDef) -> None:
        answer: list[tuple[bool, str]] = []
        started = self.clock()
        worker = threading.Thread(
            target=lambda: answer.append(ask(definition, started, cwd=self.cwd)),
            name=f"condition-{name}-call",
            daemon=True,
        )
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            self._answer(name, False, f"timed out after {self.timeout_s:g}s")
            worker.join()  # not asked again until the stuck call returns
        else:
            value, detail = answer[0] if answer else (False, "error: no answer")
            self._answer(name, value, detail)
        with self._lock:
            self._busy.discard(name)
        self._wake.set()

    def _answer(self, name: str, value: bool, detail: str) -> None:
        if detail.startswith(("error", "timed out")):
            log.info("condition of %r: %s", name, detail)
        at = self.clock()
        with self._lock:
            self._answered[name] = at
        self.asked += 1
        self.post(ConditionAnswered(process=name, value=value, at=at, detail=detail))
