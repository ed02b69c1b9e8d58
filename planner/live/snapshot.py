"""A consistent, JSON-able picture of a running planner, for the live page and status displays.

Taken under the driver's lock, so the core is not changing while it is read; bounded by ``limit``
processes so that a very large registry does not make every page refresh walk all of it.

A recent attempt's entry (``Recording._note_finished``) carries its result; its run's params
(what ``history`` shows) are the store's, looked up outside the lock by ``with_params`` — once
per run, in one query for the lot, at most every ``PARAMS_EVERY_S`` — because the core forgets
a run's params when the run ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any, Protocol

from planner.core.planner import Planner

log = logging.getLogger(__name__)


class Driven(Protocol):
    """What a snapshot reads of the live driver."""

    lock: threading.Lock
    clock: Callable[[], datetime]
    core: Planner
    running: set[tuple[str, int]]
    recent: list[dict[str, Any]]


#: how long the per-process figures on a snapshot are reused before the store is asked again
STATS_EVERY_S = 10.0
#: how soon they are asked again once an attempt ended since (the page shows it within a second)
STATS_AFTER_CHANGE_S = 1.0
STATS_WINDOW = timedelta(days=7)
#: how often the params of runs that ended since are looked up in the store, at most
PARAMS_EVERY_S = 0.5
#: attempts, newest first, whose params one look-up reads in one query; of runs not among them
#: (a long run queued long ago), at most ``PARAMS_ONE_BY_ONE`` are then read one by one
PARAMS_BATCH = 500
PARAMS_ONE_BY_ONE = 20


def running_rows(core: Planner, started: Collection[tuple[str, int]]) -> list[dict[str, Any]]:
    """The runs in flight or waiting to retry: queued, running (its worker said it began:
    ``started``) or retrying."""
    rows = []
    for process, f in core.flights():
        status = "queued"
        if f.retry_at is not None:
            status = "retrying"
        elif (f.run_id, f.attempt) in started:
            status = "running"
        rows.append(
            {
                "process": process,
                "run_id": f.run_id,
                "attempt": f.attempt,
                "status": status,
                "started": f.started,
                "retry_at": f.retry_at,
            }
        )
    return rows


#: a template's node shows the state of its first member in this order (running first)
_GROUP_STATE = (
    "running",
    "failed",
    "timed_out",
    "ready",
    "waiting",
    "retrying",
    "cancelled",
    "held",
    "succeeded",
)


def grouped_nodes(
    nodes: list[dict[str, Any]], core: Planner
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The DAG's nodes with each template's processes as one node, ``TEMPLATE.*``, in the
    state that matters most among them (running, then failed, …); and process → its node."""
    group_of: dict[str, str] = {}
    grouped: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for node in nodes:
        template = core.states[node["process"]].definition.template
        if template is None:
            out.append(node)
            continue
        key = f"{template}.*"
        group_of[node["process"]] = key
        group = grouped.get(key)
        if group is None:
            group = grouped[key] = {"process": key, "state": node["state"], "members": 0}
            out.append(group)
        group["members"] += 1
        rank = _GROUP_STATE.index(node["state"]) if node["state"] in _GROUP_STATE else 99
        best = _GROUP_STATE.index(group["state"]) if group["state"] in _GROUP_STATE else 99
        if rank < best:
            group["state"] = node["state"]
    return out, group_of


def dag_picture(
    nodes: list[dict[str, Any]], core: Planner
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The DAG the page draws from ``nodes`` (process and state): each template one node, and
    the edges between what is drawn."""
    nodes, group_of = grouped_nodes(nodes, core)
    shown = {n["process"] for n in nodes}
    edges = {
        (group_of.get(a, a), group_of.get(b, b))
        for a, b in core.dag.g.edges
        if group_of.get(a, a) in shown and group_of.get(b, b) in shown
    }
    return nodes, sorted((a, b) for a, b in edges if a != b)


def process_figures(driver: Any, now: datetime) -> list[dict[str, Any]]:
    """``planner stats``'s figures over the last 7 days, from the driver's store (outside the
    driver's lock: the loop never waits for them); the last ones while the database is away.

    They are asked again every ``STATS_EVERY_S``, or ``STATS_AFTER_CHANGE_S`` after the last
    figures when an attempt has ended since, so a finished run shows in them within a second
    without a busy planner querying its store on every refresh."""
    recent = getattr(driver, "recent", None)
    last = recent[-1] if recent else None  # a new entry (a new dict) for every ended attempt
    cached: tuple[datetime, Any, list[dict[str, Any]]] | None = getattr(driver, "_figures", None)
    if cached is not None:
        age = (now - cached[0]).total_seconds()
        if age < (STATS_EVERY_S if cached[1] is last else STATS_AFTER_CHANGE_S):
            return cached[2]
    store = getattr(driver, "store", None)
    if store is None:
        return []
    try:
        figures = [f.document() for f in store.stats(since=now - STATS_WINDOW)]
    except Exception as exc:  # an outage: keep what was shown
        log.debug("no figures for the page: %s", exc)
        figures = cached[2] if cached is not None else []
    driver._figures = (now, last, figures)
    return figures


def with_params(driver: Any, recent: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """``recent`` with each entry's run params (``None`` while not known): new dicts, the
    driver's own entries untouched. Outside the driver's lock; an outage leaves them unknown."""
    cache: dict[str, dict[str, Any]] = getattr(driver, "_params", None) or {}
    missing = {r["run_id"] for r in recent if r["run_id"] not in cache}
    asked: datetime | None = getattr(driver, "_params_asked", None)
    store = getattr(driver, "store", None)
    due = asked is None or (now - asked).total_seconds() >= PARAMS_EVERY_S
    if missing and store is not None and due:
        driver._params_asked = now
        try:
            for a in store.history(limit=PARAMS_BATCH):
                if a.run_id in missing:
                    cache[a.run_id] = dict(a.params)
            for run_id in sorted(missing - cache.keys())[:PARAMS_ONE_BY_ONE]:
                cache[run_id] = _run_params(store, run_id)
        except Exception as exc:  # an outage: shown once the store answers again
            log.debug("no params for the page: %s", exc)
        shown = {r["run_id"] for r in recent}  # what is no longer shown is forgotten
        driver._params = {k: v for k, v in cache.items() if k in shown}
    return [{**r, "params": cache.get(r["run_id"])} for r in recent]


def _run_params(store: Any, run_id: str) -> dict[str, Any]:
    from registry.errors import RunNotFound

    try:
        return dict(store.run(run_id).params)
    except RunNotFound:  # purged meanwhile: it has none to show
        return {}


def snapshot(driver: Driven, *, limit: int = 500) -> dict[str, Any]:
    """Slots, runs in flight, the queue with reasons, recent attempts (with their params,
    results and logs' tails), the DAG's states and the per-process figures."""
    picture = _under_lock(driver, limit)
    picture["recent"] = with_params(driver, picture["recent"], picture["at"])
    picture["stats"] = process_figures(driver, picture["at"])
    return picture


def _under_lock(driver: Driven, limit: int) -> dict[str, Any]:
    with driver.lock:
        core = driver.core
        now = driver.clock()
        running = running_rows(core, driver.running)
        queue = [
            {"process": name, "reasons": [r.as_json() for r in reasons]}
            for name, reasons in core.queue()[:limit]
        ]
        nodes = []
        for name, ps in list(core.states.items())[:limit]:
            if ps.flights:
                state = "running"
            elif ps.definition.hold or not ps.definition.enabled:
                state = "held"
            elif ps.candidate:
                state = "ready"
            elif ps.last_outcome is not None:
                state = ps.last_outcome.value
            else:
                state = "waiting"
            nodes.append({"process": name, "state": state})
        nodes, edges = dag_picture(nodes, core)
        return {
            "at": now,
            "timezone": core.registry.timezone,  # the zone the page writes every time in
            "slots": core.slots,
            "in_flight": core.in_flight,
            "running": running,
            "queue": queue,
            "recent": list(driver.recent[-100:]),
            "failures": [r for r in driver.recent if r["status"] in ("failed", "timed_out")][-20:],
            "nodes": nodes,
            "edges": edges,
        }
