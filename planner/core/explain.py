"""Explanations: what a process waits for, in a sentence, from its decision and its readiness."""

from __future__ import annotations

from datetime import datetime, tzinfo

from planner.core.events import CAPACITY_CODES, Code, Decision
from planner.core.state import Readiness


def blocked_sentence(decision: Decision, r: Readiness, now: datetime, tz: tzinfo) -> str:
    """What would have to happen for the process to start (``explain``'s "blocked until")."""
    if decision.decision == "start":
        return "nothing: it would start now"
    codes = {x.code for x in decision.reasons}
    if codes & CAPACITY_CODES:
        return "a free slot: it is a candidate waiting for capacity"
    parts: list[str] = []
    if r.opens_at is not None and r.opens_at > now:
        parts.append(f"time to reach {r.opens_at.astimezone(tz).isoformat(timespec='seconds')}")
    for reason in decision.reasons:
        if reason.code is Code.ANCESTORS:
            parts.append(f"fresh successes of its ancestors ({reason.detail})")
        elif reason.code in (Code.HOLD, Code.DISABLED):
            parts.append("`planner release`" if reason.code is Code.HOLD else "enabling it")
        elif reason.code in (Code.DONE, Code.FAILED):
            parts.append("`planner reset` (or `planner trigger`)")
        elif reason.code is Code.MAX_ACTIVE:
            parts.append("a running run to finish")
        elif reason.code is Code.CONDITION:
            parts.append(f"its condition to answer true ({reason.detail})")
        elif reason.code is Code.INVALID:
            parts.append("a valid definition (correct its row, or `planner apply` its file)")
        elif reason.code in (Code.MAX_RUNS, Code.WINDOW) and r.opens_at is None:
            parts.append(f"a registry change ({reason})")
    return "; ".join(parts) or "nothing"
