"""The commands that read and change definitions: ``validate``, ``apply``, ``schema``, ``graph``.

``validate`` and ``schema`` never open the database; ``graph`` reads FILES when given, so a
registry can be drawn before it is applied. ``apply`` is atomic: all FILES or nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

from planner.interfaces.cli.app import Env, UserError, cli, pass_env, utcnow
from planner.interfaces.terminal import apply_lines, graph_dot, graph_mermaid

__all__ = ["apply", "graph", "schema", "validate"]


@cli.command()
@click.argument("files", nargs=-1, required=True)
def validate(files: Sequence[str]) -> None:
    """Validate registry FILES; print every problem and exit 1 if there is any."""
    from registry.definitions.loader import load_files
    from registry.errors import DefinitionError

    try:
        registry = load_files(files)
    except DefinitionError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        count = len(exc.problems)
        raise UserError(f"{count} problem{'s' if count != 1 else ''} found") from exc
    click.echo(f"ok: {len(registry.processes)} processes in {len(files)} files")


@cli.command()
@click.argument("files", nargs=-1, required=True)
@pass_env
def apply(env: Env, files: Sequence[str]) -> None:
    """Validate FILES and apply them to the database atomically."""
    from registry.definitions.loader import load_files

    registry = load_files(files)
    result = env.store(create=True).apply(registry, now=utcnow())
    for line in apply_lines(result):
        click.echo(line)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of registry files."""
    from registry.definitions.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@cli.command()
@click.argument("files", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid"]), default="dot")
@pass_env
def graph(env: Env, files: Sequence[str], fmt: str) -> None:
    """Export the dependency graph (from FILES, else the database) as DOT or Mermaid."""
    if files:
        from registry.definitions.loader import load_files

        registry = load_files(files)
    else:
        registry, _ = env.store().load_registry()
    click.echo(graph_dot(registry) if fmt == "dot" else graph_mermaid(registry))
