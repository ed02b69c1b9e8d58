"""The ``planner`` command line (click): one module per command group.

``app``          the ``planner`` group, ``main``, exit codes and the shared ``Env`` (store, clock);
``simulation_files``  ``simulate``'s ``--durations`` and ``--conditions`` files;
``params``       parameter types (``TIME``, ``DURATION``, ``SINCE``) and ``--format``;
``definitions``  ``validate``, ``apply``, ``schema``, ``graph``;
``execution``    ``run``;
``inspection``   ``plan``, ``simulate``, ``explain``, ``status``, ``history``;
``maintenance``  ``stats``, ``purge``;
``reruns``       ``backfill``;
``runs``         ``show``, ``logs``;
``operations``   ``trigger``, ``cancel``, ``hold``, ``release``, ``reset``, ``set``, ``retry``;
``serving``      ``serve`` (the HTTP API and the page, no planning), and the API of ``run``;
``database``     ``db current``, ``db upgrade``.

A command module registers its commands on ``app.cli`` when imported; importing it below is all
it takes to add one. ``app`` imports no command module, so there is no cycle.

May import: ``planner.interfaces.terminal``, ``page``, ``api``, ``operations`` and ``dry_run``,
the drivers, the core and ``registry``.
"""

from __future__ import annotations

# one line per command module: importing it registers its commands on ``cli``
from planner.interfaces.cli import (  # noqa: F401
    database,
    definitions,
    execution,
    inspection,
    maintenance,
    operations,
    reruns,
    runs,
    serving,
)
from planner.interfaces.cli.app import cli, main

__all__ = ["cli", "main"]
