"""Schema migrations, on SQLite files and real PostgreSQL.

- The migrations build exactly the schema that ``SqlStore`` creates from the table definitions
  (Alembic's autogenerate finds nothing to do, and every table, index, constraint and trigger is
  the same), so a new store may be created the fast way and stamped with the head revision.
- A database made by the first release's own code (``tests/fixtures/first_release.sql``, made by
  ``tests/fixtures/make_first_release.py``) upgrades with every record kept, and the store reads it.
- The store refuses a database at another revision, naming both and what to do; ``upgrade``
  takes an older one to head, through a real extra revision that rebuilds a table on SQLite.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import URL, Connection, MetaData, create_engine, insert, null, select, text

from registry.errors import PlannerError, SchemaMismatch
from registry.lifecycle import RunStatus
from registry.records import RequestKind
from registry.storage import schema_version
from registry.storage.engine import make_engine
from registry.storage.sqlstore import SqlStore
from registry.storage.tables import metadata

FIXTURES = Path(__file__).parent / "fixtures"
#: the revision of the test-only release after this one
NEXT = "0900"
T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)

#: a revision after the real head: a new column on ``runs``, the table rebuilt on SQLite (where
#: dropping the old ``runs`` with foreign keys on would cascade into ``attempts``)
SECOND_REVISION = '''"""Test revision: runs get a note."""

import sqlalchemy as sa
from alembic import op

revision = "{next}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    rebuild = "always" if op.get_bind().dialect.name == "sqlite" else "auto"
    with op.batch_alter_table("runs", recreate=rebuild) as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
'''


# -- databases ----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes URLs of new empty databases of one backend (SQLite files, PostgreSQL schemas)."""
    if request.param == "sqlite":
        names = (f"sqlite:///{tmp_path / f'db{n}.sqlite'}" for n in range(1000))
        yield lambda: next(names)
        return
    server: URL = request.getfixturevalue("pg_server")
    admin = create_engine(server)
    schemas: list[str] = []

    def make() -> str:
        schema = f"m_{uuid.uuid4().hex[:16]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        existing = server.query.get("options")
        options = f"{existing} -csearch_path={schema}" if existing else f"-csearch_path={schema}"
        scoped = server.update_query_dict({"options": options})
        return scoped.render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def next_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], str]:
    """Call it to make this planner one with a revision after the real head; returns that head."""

    def install() -> str:
        real_head = schema_version.head()
        location = tmp_path / "migrations"
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(schema_version.SCRIPT_LOCATION, location, ignore=ignore)
        (location / "versions" / f"{NEXT}_note.py").write_text(
            SECOND_REVISION.format(next=NEXT, down=real_head)
        )
        monkeypatch.setattr(schema_version, "SCRIPT_LOCATION", str(location))
        assert schema_version.head() == NEXT
        return real_head

    return install


def load_first_release(url: str, tmp_path: Path) -> None:
    """Fill the empty database at ``url`` with the first release's tables and records."""
    dump = (FIXTURES / "first_release.sql").read_text()
    if url.startswith("sqlite"):
        _sqlite_script(url.removeprefix("sqlite:///"), dump)
        return
    # PostgreSQL: the first release's DDL (captured with pg_dump), then the fixture's rows
    source = tmp_path / "first_release.sqlite"
    _sqlite_script(str(source), dump)
    rows = table_rows(f"sqlite:///{source}")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            ddl = (FIXTURES / "first_release_pg.sql").read_text().replace("{schema}", schema)
            conn.exec_driver_sql(ddl)
            tables = MetaData()
            tables.reflect(conn)
            # the counter last: the triggers that the other inserts fire must not bump it
            order = sorted(tables.sorted_tables, key=lambda t: t.name == "registry_revision")
            for table in order:
                for row in rows[table.name]:
                    conn.execute(insert(table).values(**_for_postgres(row)))
            for table in ("requests", "decisions"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    finally:
        engine.dispose()


def _sqlite_script(path: str, script: str) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.executescript(script)
    finally:
        connection.close()


def _for_postgres(row: dict[str, Any]) -> dict[str, Any]:
    """A row read from SQLite as PostgreSQL takes it: times in UTC, NULLs as SQL NULL."""
    converted: dict[str, Any] = {}
    for key, value in row.items():
        if value is None:
            value = null()  # not JSON 'null' in the JSON columns
        elif isinstance(value, datetime):
            value = value.replace(tzinfo=UTC)
        converted[key] = value
    return converted


def table_rows(url: str, columns: dict[str, list[str]] | None = None) -> dict[str, list[Any]]:
    """Every row of every table but Alembic's, in key order; with ``columns``, only those tables
    and columns (what a database had before an upgrade added some)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = MetaData()
            tables.reflect(conn)
            rows: dict[str, list[Any]] = {}
            for table in tables.sorted_tables:
                if table.name == "alembic_version" or (columns and table.name not in columns):
                    continue
                names = columns[table.name] if columns else [c.name for c in table.columns]
                query = select(*(table.c[n] for n in names)).order_by(*table.primary_key.columns)
                rows[table.name] = [dict(r._mapping) for r in conn.execute(query)]
        return rows
    finally:
        engine.dispose()


def table_columns(url: str) -> dict[str, list[str]]:
    engine = make_engine(url)
    try:
        tables = MetaData()
        tables.reflect(engine)
        return {t.name: [c.name for c in t.columns] for t in tables.sorted_tables}
    finally:
        engine.dispose()


def schema_objects(url: str) -> dict[str, set[tuple[Any, ...]]]:
    """Everything the schema is made of, outside Alembic's own table, with schema names removed."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                found = conn.execute(
                    text(
                        "SELECT type, name, tbl_name, sql FROM sqlite_master "
                        "WHERE tbl_name != 'alembic_version'"
                    )
                )
                objects: dict[str, set[tuple[Any, ...]]] = {}
                # whitespace aside: a column added by ALTER TABLE is spelled on the same line
                for kind, name, table, sql in found:
                    spelled = " ".join(sql.split()) if sql else sql
                    objects.setdefault(kind, set()).add((name, table, spelled))
                return objects
            return _postgres_objects(conn)
    finally:
        engine.dispose()


_PG_CATALOG = {
    "columns": """
        SELECT table_name, column_name, ordinal_position, data_type, character_maximum_length,
               is_nullable, column_default
        FROM information_schema.columns WHERE table_schema = current_schema()""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = current_schema()::regnamespace""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = current_schema()""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal""",
    "functions": """
        SELECT proname, prosrc FROM pg_proc WHERE pronamespace = current_schema()::regnamespace""",
    "sequences": """
        SELECT sequence_name, data_type FROM information_schema.sequences
        WHERE sequence_schema = current_schema()""",
}


def _postgres_objects(conn: Connection) -> dict[str, set[tuple[Any, ...]]]:
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()

    def plain(value: Any) -> Any:
        return value.replace(f"{schema}.", "") if isinstance(value, str) else value

    objects = {}
    for kind, query in _PG_CATALOG.items():
        rows = {tuple(plain(v) for v in row) for row in conn.execute(text(query))}
        objects[kind] = {row for row in rows if "alembic_version" not in row}
    return objects


def trigger_names(url: str) -> set[str]:
    objects = schema_objects(url)
    if url.startswith("sqlite"):
        return {name for name, _table, _sql in objects["trigger"]}
    return {name for _table, name, _definition in objects["triggers"]}


def autogenerate_diff(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))
    finally:
        engine.dispose()


# -- the migrations build the store's schema ------------------------------------------------------


def test_migrations_build_exactly_the_schema_the_store_creates(
    new_database: Callable[[], str],
) -> None:
    migrated, created = new_database(), new_database()
    assert schema_version.current(migrated) is None
    assert schema_version.upgrade(migrated) == (None, schema_version.head())
    SqlStore(created).close()

    for url in (migrated, created):
        assert schema_version.current(url) == schema_version.head()
        assert autogenerate_diff(url) == []
    assert schema_objects(migrated) == schema_objects(created)
    watched, operations = ("processes", "settings"), ("INSERT", "UPDATE", "DELETE")
    if migrated.startswith("sqlite"):
        expected_triggers = {f"{table}_revision_{op}" for table in watched for op in operations}
    else:
        expected_triggers = {f"{table}_revision" for table in watched}
    assert trigger_names(migrated) == trigger_names(created) == expected_triggers
    assert table_rows(migrated) == table_rows(created)  # the counter's row, nothing else

    with SqlStore(migrated) as store:  # and the migrated triggers work
        revision = store.registry_revision()
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO settings (id, document) VALUES (1, '{}')"))
        assert store.registry_revision() == revision + 1


def test_stores_opening_a_new_database_at_once_create_it_once(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def open_store() -> None:
        barrier.wait()
        try:
            SqlStore(url).close()
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert schema_version.current(url) == schema_version.head()
    assert table_rows(url)["registry_revision"] == [{"id": 1, "revision": 0}]


def test_many_stores_opening_new_sqlite_files_at_once_all_succeed(tmp_path: Path) -> None:
    """Switching a new file to WAL needs it to itself; SQLite answers "locked" at once, not after
    its busy timeout, so a store that lost the race used to fail (about 1 open in 60)."""
    failures: list[BaseException] = []
    for round_ in range(40):
        url = f"sqlite:///{tmp_path / f'race-{round_}.db'}"
        barrier = threading.Barrier(6)

        def open_store(url: str = url, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                SqlStore(url).close()
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_current_never_creates_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    assert schema_version.current(f"sqlite:///{path}") is None
    assert not path.exists()


def test_head_is_the_head_of_the_packaged_migrations() -> None:
    """``HEAD`` lets a store open a database at head without Alembic: it must be Alembic's head."""
    location = schema_version.SCRIPT_LOCATION
    newest = max(p.name.split("_")[0] for p in Path(location, "versions").glob("[0-9]*.py"))
    assert schema_version.HEAD == schema_version.scripts_head(location) == newest
    assert schema_version.head() == schema_version.HEAD


def test_opening_a_database_at_head_does_not_import_alembic(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    SqlStore(url).close()
    script = (
        "import sys\n"
        "from registry.storage.sqlstore import SqlStore\n"
        "with SqlStore(sys.argv[1], create=False) as store:\n"
        "    store.load_registry()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, url],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


# -- the first release's databases ----------------------------------------------------------------


def test_a_first_release_database_upgrades_with_every_record(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    url = new_database()
    load_first_release(url, tmp_path)
    before = table_rows(url)
    columns = table_columns(url)
    assert all(before.values()), "the fixture has rows in every table"
    assert schema_version.current(url) == schema_version.FIRST_RELEASE

    assert schema_version.upgrade(url) == (schema_version.FIRST_RELEASE, schema_version.head())
    assert schema_version.current(url) == schema_version.head()
    assert table_rows(url, columns) == before  # every record kept
    after = table_rows(url)
    assert all(not rows for name, rows in after.items() if name not in before)  # new tables
    check_first_release_records(url)
    # upgrading again has nothing to do
    assert schema_version.upgrade(url) == (schema_version.head(), schema_version.head())


def test_a_first_release_database_upgrades_through_a_later_revision(
    new_database: Callable[[], str], tmp_path: Path, next_release: Callable[[], str]
) -> None:
    url = new_database()
    load_first_release(url, tmp_path)
    before, columns = table_rows(url), table_columns(url)
    next_release()
    with pytest.raises(SchemaMismatch, match="planner db upgrade"):
        SqlStore(url)

    assert schema_version.upgrade(url) == (schema_version.FIRST_RELEASE, NEXT)
    assert schema_version.current(url) == NEXT
    assert table_rows(url, columns) == before
    assert {row["note"] for row in table_rows(url)["runs"]} == {None}
    check_first_release_records(url)


def check_first_release_records(url: str) -> None:
    """The store reads the first release's records (see tests/fixtures/make_first_release.py)."""
    with SqlStore(url) as store:
        registry, first_applied = store.load_registry()
        assert sorted(registry.processes) == sorted(first_applied)
        assert {"extract_orders", "transform", "report", "cleanup"} <= set(registry.processes)
        assert registry.processes["report"].priority == 3
        history = store.history()
        assert len(history) == 7
        transform = [a for a in history if a.run_id == "transform-1"]
        assert [(a.attempt, a.status) for a in sorted(transform, key=lambda a: a.attempt)] == [
            (1, RunStatus.FAILED),
            (2, RunStatus.SUCCEEDED),
        ]
        assert {r.run_id for r in store.active_runs()} == {"report-1", "extract_orders-2"}
        assert [r.kind for r in store.pending_requests()] == [RequestKind.CANCEL, RequestKind.RESET]
        assert store.load_state("extract_orders") == {"watermark": "2026-03-01", "seen": [1, 2]}
        assert store.load_state("transform") is None
        assert len(store.decisions()) == 2
        # and it keeps working: new ids follow the old ones, the triggers still count
        revision = store.registry_revision()
        assert store.add_request(RequestKind.TRIGGER, at=T0, process="report") == 4
        store.update_process("report", {"priority": 4})
        assert store.registry_revision() > revision


# -- the store and other revisions ----------------------------------------------------------------


def test_the_store_refuses_a_database_from_a_newer_planner(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    SqlStore(url).close()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()

    with pytest.raises(SchemaMismatch) as refused:
        SqlStore(url)
    error = refused.value
    assert isinstance(error, PlannerError)
    assert (error.current, error.needed, error.known) == ("9999", schema_version.head(), False)
    assert "'9999'" in str(error) and repr(schema_version.head()) in str(error)
    assert "older than the database" in str(error) and "upgrade dask-planner" in str(error)
    with pytest.raises(SchemaMismatch, match="upgrade dask-planner"):
        schema_version.upgrade(url)
    assert schema_version.current(url) == "9999"


def test_the_store_refuses_an_older_database_until_it_is_upgraded(
    new_database: Callable[[], str], next_release: Callable[[], str]
) -> None:
    url = new_database()
    with SqlStore(url) as old:  # made by this release, which is the next one's predecessor
        old.create_run(run_id="a-1", process="a", scheduled=T0, queued=T0, params={"n": 1})
        old.attempt_started("a-1", 1, start=T0, worker="tcp://w:1")
    before, columns = table_rows(url), table_columns(url)
    older = next_release()
    assert schema_version.current(url) == older

    with pytest.raises(SchemaMismatch) as refused:
        SqlStore(url)
    assert str(refused.value) == (
        f"database schema is at revision {older!r}, this planner needs '0900': "
        "run `planner db upgrade`"
    )
    assert refused.value.known

    assert schema_version.upgrade(url) == (older, NEXT)
    assert table_rows(url, columns) == before
    with SqlStore(url) as store:  # at head now: used as is
        assert [(a.run_id, a.status) for a in store.history()] == [("a-1", RunStatus.RUNNING)]
    assert schema_version.current(url) == NEXT


# -- the command line ------------------------------------------------------------------------------


def _planner(url: str, *args: str) -> Any:
    from click.testing import CliRunner

    from planner.interfaces.cli import cli

    return CliRunner().invoke(cli, ["--db", url, *args])


def test_db_commands_never_create_a_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    for command in (["db", "current"], ["db", "upgrade"]):
        result = _planner(url, *command)
        assert result.exit_code == 1, result.output
        assert "no database at" in result.output and "planner apply" in result.output
    assert not (tmp_path / "missing.db").exists()


def test_db_current_and_upgrade_on_the_command_line(
    tmp_path: Path, next_release: Callable[[], str]
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    applied = _planner(url, "apply", "workflows/nightly.yaml")
    assert applied.exit_code == 0, applied.output
    current = _planner(url, "db", "current")
    assert current.exit_code == 0 and current.output.strip() == f"{schema_version.head()} (current)"

    older = next_release()
    current = _planner(url, "db", "current")
    assert current.output.strip() == f"{older}; this planner needs 0900: run `planner db upgrade`"
    refused = _planner(url, "status")
    assert refused.exit_code == 1
    assert f"revision {older!r}, this planner needs '0900'" in refused.output
    assert "planner db upgrade" in refused.output

    upgraded = _planner(url, "db", "upgrade")
    assert upgraded.exit_code == 0 and upgraded.output.strip() == f"upgraded from {older} to 0900"
    assert _planner(url, "db", "upgrade").output.strip() == "already at 0900"
    assert _planner(url, "status").exit_code == 0


def test_a_planner_refuses_a_database_from_a_newer_release(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    assert _planner(url, "apply", "workflows/nightly.yaml").exit_code == 0
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for command in (["run", "--until-idle"], ["plan"], ["apply", "workflows/nightly.yaml"]):
        result = _planner(url, *command)
        assert result.exit_code == 1, result.output
        assert "'9999'" in result.output and "upgrade dask-planner" in result.output
