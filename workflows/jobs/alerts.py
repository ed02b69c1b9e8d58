"""Lifecycle hooks of the example registries."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.records import ErrorInfo

log = logging.getLogger("workflows.alerts")


def notify(
    process: str,
    run_id: str,
    attempt: int,
    status: str,
    error: ErrorInfo | None = None,
    event: str = "",
) -> str:
    """Log the end of a run (a stand-in for e-mail / chat); return the logged line."""
    line = f"{event or 'hook'}: {process} run {run_id} attempt {attempt} {status}"
    if error is not None:
        line += f" — {error.type}: {error.message}"
    if status == "succeeded":
        log.info(line)
    else:
        log.warning(line)
    return line
