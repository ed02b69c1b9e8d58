"""Engines and transactions for the store's databases (SQLite files and PostgreSQL).

``make_engine(url)`` turns a SQLAlchemy URL into the engine every part of the store uses, the
store itself and the schema migrations alike. ``database_url`` says which URLs those are, and
refuses any other with ``UnsupportedDatabase`` (one line naming the supported forms) rather than
let SQLAlchemy fail on a missing driver:

- ``postgresql+psycopg://``; ``postgresql://`` and ``postgres://`` (libpq's and Heroku-style
  ``DATABASE_URL`` spelling, which SQLAlchemy no longer accepts) mean the same: psycopg 3, the
  driver we ship and test. Connections are pinged before use, so a planner survives a database
  restart.
- ``sqlite:///PATH`` (``sqlite+pysqlite``), Python's own driver.
- SQLite files run in WAL mode (readers never block the writer, nor the writer them), with foreign
  keys on and a busy timeout (``SQLITE_BUSY_TIMEOUT_S``, or ``PLANNER_SQLITE_BUSY_TIMEOUT`` seconds
  from the environment). The sqlite3 module's own transaction handling is switched off:
  ``begin`` emits ``BEGIN IMMEDIATE`` on a connection opened by ``write_transaction``, so a writer
  takes the write lock up front (waiting up to the busy timeout) instead of failing with
  ``SQLITE_BUSY`` when a read inside it would have to upgrade after another process committed, and
  a plain deferred ``BEGIN`` otherwise.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from registry.errors import PlannerError, UnsupportedDatabase

#: seconds a SQLite writer waits for another process's write lock before giving up
SQLITE_BUSY_TIMEOUT_S = 30.0
#: environment variable that overrides it (seconds; e.g. shorter in tests of a held lock)
SQLITE_BUSY_TIMEOUT_ENV = "PLANNER_SQLITE_BUSY_TIMEOUT"


def sqlite_busy_timeout_s() -> float:
    """The SQLite busy timeout: ``PLANNER_SQLITE_BUSY_TIMEOUT`` seconds if set, else 30."""
    raw = os.environ.get(SQLITE_BUSY_TIMEOUT_ENV, "").strip()
    if not raw:
        return SQLITE_BUSY_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise PlannerError(
            f"{SQLITE_BUSY_TIMEOUT_ENV}={raw!r}: expected a positive number of seconds"
        )
    return value


_POSTGRESQL = ("postgresql", "postgresql+psycopg", "postgres", "postgres+psycopg")
_SQLITE = ("sqlite", "sqlite+pysqlite")


def database_url(url: str) -> URL:
    """``url`` parsed, with the driver we use; ``UnsupportedDatabase`` if we cannot use it."""
    if not url.strip():
        raise UnsupportedDatabase(url, "the database URL is empty")
    try:
        parsed = make_url(url.strip())
    except ArgumentError:
        raise UnsupportedDatabase(url, f"{url!r} is not a database URL") from None
    if parsed.drivername in _POSTGRESQL:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in _SQLITE:
        return parsed
    shown = parsed.render_as_string(hide_password=True)
    raise UnsupportedDatabase(url, f"unsupported database URL {shown!r}")


def make_engine(url: str) -> Engine:
    """The engine for ``url`` (``sqlite:///planner.db``, ``postgresql+psycopg://...``)."""
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    busy = sqlite_busy_timeout_s()
    engine = create_engine(parsed, connect_args={"timeout": busy})
    event.listen(engine, "connect", functools.partial(_sqlite_connect, busy))
    event.listen(engine, "begin", _sqlite_begin)
    return engine


@contextmanager
def write_transaction(engine: Engine, *, foreign_keys: bool = True) -> Iterator[Connection]:
    """A connection in a write transaction, committed when the block ends without error.

    ``foreign_keys=False`` is for schema migrations on SQLite, which rebuild a table by copying
    it, dropping the old one and renaming the copy: with foreign keys on, the drop would delete
    the rows that reference it (``ON DELETE CASCADE``). SQLite ignores the pragma inside a
    transaction, so it is set before ``BEGIN``; the references are checked before the commit."""
    relaxed = not foreign_keys and engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        conn.execution_options(planner_write=True)
        if relaxed:
            _sqlite_pragma(conn, "foreign_keys=OFF")
        try:
            with conn.begin():
                yield conn
                if relaxed:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        table, rowid, parent, _ = broken[0]
                        raise RuntimeError(
                            f"{len(broken)} broken reference(s), the first from {table!r} row "
                            f"{rowid} to {parent!r}: nothing was changed"
                        )
        finally:
            if relaxed:
                _sqlite_pragma(conn, "foreign_keys=ON")


def _sqlite_pragma(conn: Connection, pragma: str) -> None:
    # On the DBAPI connection, so that SQLAlchemy does not begin a transaction around it.
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _sqlite_connect(busy: float, dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the sqlite3 module, which would otherwise start deferred
    # transactions on its own; ``_sqlite_begin`` emits BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={max(int(busy * 1000), 1)}")
        _wal(cursor, busy)
        cursor.execute("PRAGMA foreign_keys=ON")
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a committed transaction
        # survives a crash of the planner process (the OS has it); only a power loss can take
        # the last commits. That is the durability the planner promises, at a fraction of the cost.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _wal(cursor: Any, busy: float) -> None:
    """Switch the file to WAL mode (once per file; it persists).

    Changing the journal mode needs the file to itself: when several processes open a new
    database at the same instant, SQLite answers "database is locked" at once rather than
    waiting, so the switch is retried with a short backoff up to the busy timeout."""
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + busy
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)  # backoff between attempts, not synchronisation
            delay = min(delay * 2, 0.2)


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("planner_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
