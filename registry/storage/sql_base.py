"""``SqlBase``: opening a store's database, and the transactions every ``SqlStore`` method runs in.

Writes open with ``_write()`` (fenced by the lease once the planner leads), reads with
``_read()`` (one snapshot); ``batch()`` groups a turn's writes into one transaction. See
``registry.storage.sqlstore`` for the theory of operation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Insert

from registry.errors import NoDatabase
from registry.storage import leases, schema_version
from registry.storage.engine import make_engine, write_transaction

__all__ = ["SqlBase"]


class SqlBase:
    """An open database and its transactions."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        """Open the database at ``url``; an empty one is created unless ``create`` is false,
        when a missing one raises ``NoDatabase`` (read-only commands never create one)."""
        self.url = url
        if not create and schema_version.missing_sqlite_file(url):
            raise NoDatabase(url)
        self._engine = make_engine(url)
        self._sqlite = self._engine.dialect.name == "sqlite"
        self._local = threading.local()  # the connection of the batch open on this thread
        self._reported: set[str] = set()  # registry problems already logged
        self._fence: tuple[str, int] | None = None  # (instance, fencing number) once leading
        try:
            with self._write() as conn:  # under the write lock: one creator, no half upgrade
                schema_version.prepare(conn, create=create)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def engine(self) -> Engine:
        """The underlying engine (for operators' tooling and tests that edit tables directly)."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes made inside into one transaction, committed when the block ends.

        The live loop wraps each turn's records in a batch (one commit instead of one per run)
        and acts on them — submits to Dask — only after the block has committed."""
        if getattr(self._local, "conn", None) is not None:
            yield  # already inside a batch on this thread
            return
        with self._write() as conn:
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with write_transaction(self._engine) as conn:
            if self._fence is not None:
                leases.check_fence(conn, *self._fence)
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        current = getattr(self._local, "conn", None)
        if current is not None:  # see this batch's own uncommitted writes
            yield current
            return
        with self._engine.connect() as conn:
            if not self._sqlite:
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def _upsert(self, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> Insert:
        make = sqlite_insert if self._sqlite else pg_insert
        return (
            make(table)
            .values(**key, **values)
            .on_conflict_do_update(index_elements=list(key), set_=dict(values))
        )
