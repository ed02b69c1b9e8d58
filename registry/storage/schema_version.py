"""The revision of a store's schema, and bringing a database to this planner's revision.

    head()                  the revision this planner's tables are at (its newest migration)
    current(engine_or_url)  the revision a database is at; None for an empty one
    upgrade(engine_or_url)  migrate an earlier database to ``head()``, every record kept
    prepare(conn)           what ``SqlStore`` does on opening: create an empty database at
                            ``head()`` (or, for a read-only command, refuse it: ``NoDatabase``),
                            use one at ``head()`` as is, refuse any other revision with
                            ``SchemaMismatch`` (naming both revisions and what to do)

Revisions are Alembic's, kept in ``registry.storage.migrations``; Alembic's ``Config`` is built
here, in code, with the connection passed through ``config.attributes``. The first release
predates Alembic: a database with its tables but no ``alembic_version`` table is at revision
``FIRST_RELEASE``, and ``upgrade`` stamps it so before migrating.

A new database is not built by running every migration but with ``tables.metadata.create_all``
(and the triggers it installs), then stamped with ``head()``: one step, fast enough for the
hundreds of stores the tests create. ``tests/test_migrations.py`` proves both roads lead to the
same schema.

Creation and upgrades run in one write transaction that also holds the schema lock: SQLite's
``BEGIN IMMEDIATE`` write lock (its DDL is transactional), or on PostgreSQL a transaction-scoped
advisory lock, so two processes opening a new database at once (a planner and a CLI command) do
not both create it, and no store opens a database halfway through an upgrade.

Opening a database already at ``head()`` (every command, every time) takes one plain
``SELECT`` of ``alembic_version`` and never imports Alembic, a good part of a short command's
start: ``HEAD`` spells out the packaged migrations' head, and ``tests/test_migrations.py`` checks
it against Alembic's own. Anything else (an empty database, another revision) goes through Alembic
as before.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, column, func, inspect, select, table

from registry.errors import NoDatabase, SchemaMismatch
from registry.storage.engine import database_url, make_engine, write_transaction
from registry.storage.tables import metadata

if TYPE_CHECKING:  # Alembic is imported only where it is used: see the module's docstring
    from alembic.config import Config
    from alembic.script import ScriptDirectory

#: where Alembic finds ``env.py`` and ``versions/``
SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))
#: the head of the migrations packaged there: a new revision changes it (a test says so)
HEAD = "0004"
#: ``SCRIPT_LOCATION`` as packaged, which ``HEAD`` is the head of (tests point it at a copy with
#: a later revision, whose head Alembic then finds)
_PACKAGED = SCRIPT_LOCATION
#: the revision of databases the first release created (it had no ``alembic_version`` table)
FIRST_RELEASE = "0001"
#: key of the PostgreSQL advisory lock held while creating or upgrading (any fixed number will do)
_PG_CREATE_LOCK = 0x706C616E6E6572  # "planner"
#: a table every first-release database has
_FIRST_RELEASE_TABLE = "processes"
#: Alembic's own table, as plain SQL sees it (not in ``tables.metadata``: the store does not own it)
_VERSION = table("alembic_version", column("version_num"))


def head() -> str:
    """The revision this planner's schema is at."""
    if SCRIPT_LOCATION == _PACKAGED:
        return HEAD
    return scripts_head(SCRIPT_LOCATION)


def scripts_head(location: str) -> str:
    """The head revision of the migrations at ``location``, as Alembic finds it."""
    revision = _scripts(location).get_current_head()
    assert revision is not None, f"no migrations in {location}"
    return revision


def current(engine_or_url: Engine | str) -> str | None:
    """The revision the database is at: None if it is empty (or is a SQLite file that does not
    exist, which this does not create), ``FIRST_RELEASE`` for one the first release made."""
    if isinstance(engine_or_url, str) and _missing_sqlite_file(engine_or_url):
        return None
    with _connected(engine_or_url) as engine, engine.connect() as conn:
        return revision_of(conn)


def upgrade(engine_or_url: Engine | str) -> tuple[str | None, str]:
    """Migrate the database to ``head()`` in one transaction; ``(revision before, head())``.

    An empty database gets every migration; one already at ``head()`` is left alone. A revision
    this planner does not know (a newer release's) raises ``SchemaMismatch``, changing nothing."""
    target = head()
    with _connected(engine_or_url) as engine, write_transaction(engine, foreign_keys=False) as conn:
        _lock(conn)
        before = revision_of(conn)
        if before == target:
            return before, target
        if before is not None and before not in _known(SCRIPT_LOCATION):
            raise SchemaMismatch(before, target, known=False)
        from alembic import command

        config = _config(conn)
        if before is not None and not _has_version_table(conn):
            command.stamp(config, before)  # a first-release database: record what it is at
        command.upgrade(config, "head")
    return before, target


def prepare(conn: Connection, *, create: bool = True) -> None:
    """Make the database ready for a store, inside the store's open write transaction ``conn``.

    Empty: create the tables, triggers and counter row, stamped ``head()`` (with ``create=False``:
    ``NoDatabase``). At ``head()``: nothing to do. At any other revision: ``SchemaMismatch``,
    older ones pointing at ``planner db upgrade``, unknown (newer) ones at upgrading
    dask-planner."""
    _lock(conn)
    target = head()
    if _stamped(conn) == [target]:  # the usual case, told without Alembic
        return
    found = revision_of(conn)
    if found == target:
        return
    if found is not None:
        raise SchemaMismatch(found, target, known=found in _known(SCRIPT_LOCATION))
    if not create:
        raise NoDatabase(conn.engine.url.render_as_string(hide_password=True))
    from alembic.runtime.migration import MigrationContext

    metadata.create_all(conn)
    MigrationContext.configure(conn).stamp(_scripts(SCRIPT_LOCATION), target)


def revision_of(conn: Connection) -> str | None:
    """``current`` on an open connection."""
    from alembic.runtime.migration import MigrationContext

    found = MigrationContext.configure(conn).get_current_revision()
    if found is None and inspect(conn).has_table(_FIRST_RELEASE_TABLE):
        return FIRST_RELEASE
    return found


def _stamped(conn: Connection) -> list[str] | None:
    """The revisions ``alembic_version`` holds, read as plain SQL (None without the table)."""
    if not _has_version_table(conn):
        return None
    return [str(v) for v in conn.execute(select(_VERSION.c.version_num)).scalars()]


# -- helpers ------------------------------------------------------------------------------------


@functools.cache
def _scripts(location: str) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(location)


@functools.cache
def _known(location: str) -> frozenset[str]:
    return frozenset(script.revision for script in _scripts(location).walk_revisions())


def _config(conn: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    # Config options go through configparser interpolation, which reads "%" as a reference.
    config.set_main_option("script_location", SCRIPT_LOCATION.replace("%", "%%"))
    config.attributes["connection"] = conn
    return config


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_CREATE_LOCK)))


def _has_version_table(conn: Connection) -> bool:
    return inspect(conn).has_table("alembic_version")


@contextmanager
def _connected(engine_or_url: Engine | str) -> Iterator[Engine]:
    """The engine given, or one made for the URL given and disposed of afterwards."""
    if isinstance(engine_or_url, Engine):
        yield engine_or_url
        return
    engine = make_engine(engine_or_url)
    try:
        yield engine
    finally:
        engine.dispose()


def missing_sqlite_file(url: str) -> bool:
    """Whether ``url`` names a SQLite file that does not exist (checked without creating it)."""
    return _missing_sqlite_file(url)


def _missing_sqlite_file(url: str) -> bool:
    parsed = database_url(url)  # UnsupportedDatabase before anything else
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return False
    return not Path(database).exists()
