"""Command-line extract of the customers table: the ``command:`` flavour of a job.

    python -m workflows.jobs.customers_cli [--out DIR] [--rows N] [--seed S]

Run by the planner, it reads its defaults from the environment the planner sets for commands:
``PLANNER_PARAM_DATA_DIR``, ``PLANNER_PARAM_ROWS``, ``PLANNER_PARAM_SEED`` (the process's
``params``), and prints a one-line summary that becomes the run's result. Exit code 0 is success.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from workflows.jobs.etl import DEFAULT_DATA_DIR, make_customers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="customers_cli", description=__doc__.splitlines()[0])
    env = os.environ
    parser.add_argument("--out", default=env.get("PLANNER_PARAM_DATA_DIR", DEFAULT_DATA_DIR))
    parser.add_argument("--rows", type=int, default=int(env.get("PLANNER_PARAM_ROWS", "500")))
    parser.add_argument("--seed", type=int, default=int(env.get("PLANNER_PARAM_SEED", "42")))
    args = parser.parse_args(argv)
    if args.rows <= 0:
        print(f"--rows must be positive, got {args.rows}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame = make_customers(rows=args.rows, seed=args.seed)
    path = out / "customers.csv"
    frame.to_csv(path, index=False)
    run = env.get("PLANNER_RUN_ID", "manual")
    print(f"run {run}: wrote {len(frame)} customers to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
