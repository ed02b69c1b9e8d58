"""The commands that read and change definitions: ``validate``, ``apply``, ``schema``, ``graph``.

``apply --dry-run`` reads the database (creating none) and prints what applying would add,
change field by field, and remove (``registry.definitions.diff``); it writes nothing.

``validate`` and ``schema`` never open the database; ``graph`` reads FILES when given, so a
registry can be drawn before it is applied. ``apply`` is atomic: all FILES or nothing, and it
writes only the rows that change. Problems alike of many processes are printed once, as a group
(count, first names, file and line of the first); a large diff is printed as counts and the
first names.

``apply_files`` is the apply of ``apply`` and of ``planner run FILES``. ``run`` passes
``revalidate=False``: when the files' digest (``registry.storage.digest``) is the one the last
apply recorded, and the registry has not changed since, the files are neither validated nor
applied again — it says so in one line. ``apply`` always validates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from planner.interfaces.cli.app import Env, UserError, cli, pass_env, utcnow
from planner.interfaces.terminal import apply_lines, graph_dot, graph_mermaid, problem_lines
from planner.interfaces.terminal.style import plural

if TYPE_CHECKING:
    from registry.storage.store import Store

__all__ = ["apply", "apply_files", "graph", "schema", "validate"]


@cli.command()
@click.argument("files", nargs=-1, required=True)
def validate(files: Sequence[str]) -> None:
    """Validate registry FILES; print every problem and exit 1 if there is any."""
    from registry.definitions.loader import load_files
    from registry.errors import DefinitionError

    try:
        registry = load_files(files)
    except DefinitionError as exc:
        for line in problem_lines(exc.problems):
            click.echo(line, err=True)
        count = len(exc.problems)
        raise UserError(f"{count} problem{'s' if count != 1 else ''} found") from exc
    processes = plural(len(registry.processes), "process", "processes")
    click.echo(f"ok: {processes} in {plural(len(files), 'file')}")


@cli.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@pass_env
def apply(env: Env, files: Sequence[str], dry_run: bool) -> None:
    """Validate FILES and apply them to the database atomically (processes they do not name
    are removed: --dry-run shows what would change first)."""
    if dry_run:
        from planner.interfaces.terminal.diffs import diff_lines
        from registry.definitions.diff import diff
        from registry.definitions.loader import load_files
        from registry.errors import NoDatabase
        from registry.model import RegistryDef

        new = load_files(files)
        try:
            current, _ = env.store().load_registry()
        except NoDatabase:  # nothing there yet: all would be added, and nothing is created
            current = RegistryDef()
        for line in diff_lines(diff(current, new)):
            click.echo(line)
        return
    apply_files(env.store(create=True), files, revalidate=True)


def apply_files(store: Store, files: Sequence[str], *, revalidate: bool) -> None:
    """Validate ``files`` and apply them to ``store``, printing what changed; unless
    ``revalidate``, files that are the ones last applied (to a registry unchanged since) are
    left as they are. ``DefinitionError`` if they are invalid: nothing is applied."""
    from registry.storage.digest import files_digest

    try:
        digest: str | None = files_digest(files)
    except OSError:  # validation names the file it cannot read
        digest = None
    if not revalidate and digest is not None and store.unchanged_since_apply(digest):
        click.echo(
            f"registry unchanged since last apply (digest {digest[:12]}): not validated again"
        )
        return
    from registry.definitions.loader import load_files

    result = store.apply(load_files(files), now=utcnow(), digest=digest)
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
