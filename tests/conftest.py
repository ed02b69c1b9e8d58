"""Shared fixtures: database URLs for SQLite and PostgreSQL, and an open ``SqlStore`` on each.

PostgreSQL tests use ``PLANNER_TEST_PG_URL`` (default: the local ``test`` database as ``postgres``).
Each test gets a fresh schema, reached through the connection's ``search_path``, dropped afterwards.
When the server is unreachable the tests are skipped, except under CI (``CI=true``) where that is
a failure: CI must not go green without having tested PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from registry.storage.sqlstore import SqlStore

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_base_url() -> URL:
    url = make_url(os.environ.get("PLANNER_TEST_PG_URL", DEFAULT_PG_URL))
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


@pytest.fixture(scope="session")
def pg_server() -> URL:
    """The PostgreSQL server URL, once checked to be reachable (skip or fail otherwise)."""
    url = _pg_base_url()
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        shown = url.render_as_string(hide_password=True)
        message = f"PostgreSQL not reachable at {shown}; set PLANNER_TEST_PG_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI must test PostgreSQL): {exc}", pytrace=False)
        pytest.skip(message)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def pg_url(pg_server: URL) -> Iterator[str]:
    """A URL whose connections see only a fresh schema of their own."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(pg_server)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        existing = pg_server.query.get("options")
        options = f"-csearch_path={schema}"
        if existing:
            options = f"{existing} {options}"
        url = pg_server.update_query_dict({"options": options})
        yield url.render_as_string(hide_password=False)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'planner.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once per backend."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(store_url)
    try:
        yield opened
    finally:
        opened.close()
