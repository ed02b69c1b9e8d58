"""``python -m planner.interfaces.cli``: the ``planner`` console script without the script."""

from __future__ import annotations

from planner.interfaces.cli import main

main()
