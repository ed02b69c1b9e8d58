"""``planner db``: the database's schema revision, and migrating it to this planner's.

``planner db current`` prints the revision a database is at and whether this planner can use it;
``planner db upgrade`` brings an earlier database (the first release's included) to the planner's
revision with Alembic, keeping every record. Neither creates a database that does not exist:
``planner apply`` and ``planner run`` do that, at the current revision.
"""

from __future__ import annotations

import click

from planner.interfaces.cli.app import Env, cli, pass_env
from registry.errors import NoDatabase

__all__ = ["current", "db", "upgrade"]


@cli.group()
def db() -> None:
    """Schema migrations: show the revision, upgrade to this planner's."""


def _existing_url(env: Env) -> str:
    from registry.storage.engine import database_url  # Alembic & co.: only for these commands
    from registry.storage.store import resolve_url

    url = resolve_url(env.url)
    parsed = database_url(url)  # UnsupportedDatabase for a URL we cannot use
    if parsed.get_backend_name() == "sqlite":
        from pathlib import Path

        path = parsed.database
        if not path or path == ":memory:" or not Path(path).exists():
            raise NoDatabase(url)
    return url


@db.command()
@pass_env
def current(env: Env) -> None:
    """Print the database's schema revision and this planner's."""
    from registry.storage import schema_version

    url = _existing_url(env)
    revision = schema_version.current(url)
    head = schema_version.head()
    if revision is None:
        click.echo(f"empty database; this planner's revision is {head}")
    elif revision == head:
        click.echo(f"{revision} (current)")
    else:
        click.echo(f"{revision}; this planner needs {head}: run `planner db upgrade`")


@db.command()
@pass_env
def upgrade(env: Env) -> None:
    """Migrate the database to this planner's schema revision, keeping every record."""
    from registry.storage import schema_version

    url = _existing_url(env)
    before, after = schema_version.upgrade(url)
    if before == after:
        click.echo(f"already at {after}")
    else:
        click.echo(f"upgraded from {before or 'an empty database'} to {after}")
