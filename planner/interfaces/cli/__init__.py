"""The ``planner`` command line (click): one module per command group.

May import: ``planner.interfaces.terminal`` and ``page``, the drivers, the core and ``registry``.
"""

from __future__ import annotations

from planner.interfaces.cli.app import cli, main

__all__ = ["cli", "main"]
