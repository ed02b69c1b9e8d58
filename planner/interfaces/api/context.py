"""What the routes of the API share: the store they read and write, the token that guards writes,
the metrics it serves and the clock (the wall clock is read here, at the edge)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from planner.interfaces.api.metrics import PlannerMetrics
    from registry.storage.store import Store

__all__ = ["ApiContext", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True, kw_only=True)
class ApiContext:
    """``store`` is the API's own (not the live driver's, whose writes are fenced by its lease);
    ``token`` is ``PLANNER_API_TOKEN`` (``None``: writes refused)."""

    store: Store
    token: str | None
    metrics: PlannerMetrics
    clock: Callable[[], datetime] = field(default=utcnow)
