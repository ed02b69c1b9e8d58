"""The Alembic environment of the store's schema: ``env.py``, a revision template, ``versions/``.

Nothing here is imported by the planner: ``registry.storage.schema_version`` points Alembic at this
directory and hands it an open connection. Each file in ``versions/`` is one revision, written by
hand and never edited once released (the tables in ``registry.storage.tables`` describe only the
newest schema); ``tests/test_migrations.py`` checks that upgrading an empty database through every
revision yields exactly what ``tables`` creates.

May import: Alembic and SQLAlchemy; ``env.py`` also ``registry.storage.tables`` (the metadata
Alembic compares a database with). Revisions import nothing of the planner, so that what a released
revision does never changes.

A new revision: change ``tables``, copy the newest file in ``versions/`` to the next number (its
``down_revision`` the previous one), write the ``op`` calls that take a database from the previous
schema to the new one, set ``registry.storage.schema_version.HEAD`` to its number (stores open a
database at head without Alembic), and run ``tests/test_migrations.py``.
"""
