"""Tiny stand-in jobs for registries that are about planning, not about work."""

from __future__ import annotations

import time


def sleep(seconds: float = 0.1) -> float:
    """Sleep ``seconds`` (a job of known duration); return them."""
    time.sleep(seconds)
    return seconds


def noop() -> None:
    """Do nothing."""


def fail(message: str = "this job always fails") -> None:
    """Raise ``RuntimeError(message)``."""
    raise RuntimeError(message)
