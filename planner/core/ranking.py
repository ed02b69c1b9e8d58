"""Ranking: which candidates are "best". One key function, ending with the name for determinism.

Default order (ADP): alarmed recurrent, then other recurrent, then single; within a class by
priority (high first), then critical-path length (longest first), then waiting time (longest
first), then name. ``ranking: priority`` puts priority before the class.
"""

from __future__ import annotations

from typing import Any

from planner.core.state import ProcState
from registry.model import Ranking

ALARMED, RECURRENT, SINGLE = 0, 1, 2


def process_class(ps: ProcState) -> int:
    if ps.definition.recurrent:
        return ALARMED if ps.alarmed else RECURRENT
    return SINGLE


def rank_key(ps: ProcState, ranking: Ranking) -> tuple[Any, ...]:
    """Smaller sorts first. ``ps.ready_since`` must be set (the process is a candidate)."""
    assert ps.ready_since is not None
    since = ps.ready_since.timestamp()
    priority = -ps.definition.priority
    if ranking is Ranking.PRIORITY:
        return (priority, process_class(ps), -ps.critical_path, since, ps.name)
    return (process_class(ps), priority, -ps.critical_path, since, ps.name)
