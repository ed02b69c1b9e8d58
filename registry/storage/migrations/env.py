"""How Alembic runs the store's migrations: on the connection it is given, inside its transaction.

``registry.storage.schema_version`` builds the Alembic ``Config`` in code (no ``alembic.ini``) and
passes an open connection, already in a write transaction and holding the schema lock, as
``config.attributes["connection"]``. Alembic then commits nothing itself: the caller's transaction
holds the whole upgrade, so a failed migration leaves the database as it was.

SQLite cannot alter most of a table in place, so migrations run in batch mode there (the table is
copied, dropped and renamed); the caller turns foreign keys off for that.
"""

from __future__ import annotations

from alembic import context

from registry.storage.tables import metadata


def run() -> None:
    if context.is_offline_mode():
        raise RuntimeError("the store's migrations run against a database, not as a SQL script")
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "the store's migrations run through registry.storage.schema_version "
            "(`planner db upgrade`), which passes the connection"
        )
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
