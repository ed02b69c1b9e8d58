"""The SQL tables behind ``SqlStore`` (SQLAlchemy Core), and their triggers.

    processes          one row per process: the codec's JSON document plus promoted columns
                       (priority, hold, enabled, max_active) that operators may edit with SQL and
                       that win over the document when the registry is loaded
    settings           one row (id 1): timezone, slots, pools, ranking as a JSON document
    registry_revision  one row (id 1): a counter that database triggers bump on every INSERT,
                       UPDATE or DELETE of ``processes`` or ``settings`` -- including an
                       operator's direct ``UPDATE processes SET priority = ...`` -- so a running
                       planner notices hot changes by reading one integer
    runs, attempts     run history; ``attempts`` repeats the run's process and scheduled time so
                       that ``history`` needs no join
    process_state      per process: the state a job saved, and when it was last reset
    lease              one row: which planner plans for this database, with its fencing number
    planners           the planner processes seen on this database: leader, standbys, stopped
    requests           operator requests (trigger, cancel, reset) waiting for the planner
    decisions          the decision log
    registry_digest    one row: the digest of the files last applied
    registry_snapshot  one row: the registry as last validated, and the revision it is of, so
                       that reading an unchanged registry validates nothing
                       (``registry.storage.snapshot``); not watched: writing it is no change

Rows never leave this module as domain objects: ``sqlstore`` converts them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    event,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the backend keeps.

    SQLite stores no offset, so values are converted to UTC and stored naive; PostgreSQL's
    ``timestamptz`` comes back in the session's zone and is converted to UTC. A naive datetime is a
    bug in the caller (the store's contract is aware UTC) and is refused rather than guessed at."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()!r}: the store needs aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

processes = Table(
    "processes",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("hold", Boolean, nullable=False, default=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("max_active", Integer, nullable=False, default=1),
    Column("first_applied", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

settings = Table(
    "settings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("document", JSON, nullable=False),
)

registry_revision = Table(
    "registry_revision",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", BigInteger, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(255), primary_key=True),
    Column("process", String(200), nullable=False),
    # the N of run id f"{process}-{N}", so the highest one used is a MAX() away
    Column("seq", Integer, nullable=True),
    Column("scheduled", UTCDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempt", Integer, nullable=False),  # the current (or last) attempt
    Column("params", JSON, nullable=False),
    Column("request_id", BigInteger, nullable=True),
    Column("created", UTCDateTime, nullable=False),  # when the first attempt was queued
    Column("retry_at", UTCDateTime, nullable=True),  # while retrying
    Column("ended", UTCDateTime, nullable=True),  # when the run reached its terminal status
    Index("ix_runs_process_created", "process", "created"),
    Index("ix_runs_process_seq", "process", "seq"),
    Index("ix_runs_status", "status"),
)

attempts = Table(
    "attempts",
    metadata,
    Column(
        "run_id",
        String(255),
        ForeignKey("runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("attempt", Integer, primary_key=True, autoincrement=False),
    Column("process", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("scheduled", UTCDateTime, nullable=False),
    Column("queued", UTCDateTime, nullable=False),
    Column("start", UTCDateTime, nullable=True),
    Column("end", UTCDateTime, nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("worker", String(255), nullable=True),
    Column("error_type", String(255), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("error_traceback", Text, nullable=True),
    Column("result", Text, nullable=True),  # a short summary: the value's repr, a stdout tail
    Column("log", Text, nullable=True),  # the captured log, bounded on the worker
    Column("result_json", JSON(none_as_null=True), nullable=True),  # the returned value as JSON
    Index("ix_attempts_queued", "queued"),
    Index("ix_attempts_process_queued", "process", "queued"),
    Index("ix_attempts_process_status_end", "process", "status", "end"),
)

process_state = Table(
    "process_state",
    metadata,
    Column("process", String(200), primary_key=True),
    Column("state", JSON(none_as_null=True), nullable=True),
    Column("reset_at", UTCDateTime, nullable=True),
)

requests = Table(
    "requests",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("process", String(200), nullable=True),
    Column("run_id", String(255), nullable=True),
    Column("params", JSON, nullable=False),
    Column("force", Boolean, nullable=False, default=False),
    Column("created", UTCDateTime, nullable=False),
    Column("handled", UTCDateTime, nullable=True),
    Column("due", UTCDateTime, nullable=True),  # a trigger for a later time (trigger --at)
    Column("scheduled", UTCDateTime, nullable=True),  # a backfill's fire time (ctx.scheduled)
    Index("ix_requests_handled_id", "handled", "id"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("process", String(200), nullable=False),
    Column("decision", String(20), nullable=False),
    Column("reasons", JSON, nullable=False),
    Index("ix_decisions_at", "at"),
    Index("ix_decisions_process_at", "process", "at"),
)

# One row (id 1) once any planner has run: who plans for this database, and the fencing number
# every write of that planner checks (``registry.storage.leases``). A takeover increments it.
lease = Table(
    "lease",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("holder", String(100), nullable=True),  # a planner's instance id; NULL when released
    Column("fence", BigInteger, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=True),
    Column("renewed_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
)

# One row per planner process that ran on this database: leader, standby or stopped, and when it
# was last seen (``planner status`` shows them; stopped rows are kept for "last planner seen").
planners = Table(
    "planners",
    metadata,
    Column("instance", String(100), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("role", String(20), nullable=False),  # leader | standby | stopped
    Column("started", UTCDateTime, nullable=False),
    Column("seen", UTCDateTime, nullable=False),
    Index("ix_planners_seen", "seen"),
)

# One row (id 1) once files were applied: the digest of what was applied (the files' bytes and
# names), so that ``planner run FILES`` on unchanged files skips validating them again.
registry_digest = Table(
    "registry_digest",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("digest", String(64), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

# One row (id 1) once a registry was validated by a writer: what ``load_registry`` returned (the
# pickled registry and first-applied times), for the ``revision`` it was validated at, by the
# planner of ``identity``. Not in WATCHED: storing a snapshot does not change the registry.
registry_snapshot = Table(
    "registry_snapshot",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", BigInteger, nullable=False),
    Column("identity", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
)

#: the tables whose every change bumps ``registry_revision``
WATCHED = (processes, settings)

_SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS {table}_revision_{op} AFTER {op} ON {table}
BEGIN
    UPDATE registry_revision SET revision = revision + 1 WHERE id = 1;
END
"""

# The function qualifies the counter with the schema of the table that fired, so an operator's
# session with another search_path still bumps the right counter.
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION planner_bump_registry_revision() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE 'UPDATE ' || quote_ident(TG_TABLE_SCHEMA)
        || '.registry_revision SET revision = revision + 1 WHERE id = 1';
    RETURN NULL;
END
$fn$
"""

_PG_TRIGGER = """
CREATE TRIGGER {table}_revision AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION planner_bump_registry_revision()
"""


@event.listens_for(metadata, "after_create")
def _after_create(target: MetaData, connection: Connection, **kw: Any) -> None:
    """Create the revision triggers for watched tables just created, and the counter row.

    ``create_all`` passes the tables it actually created, so opening an existing database runs no
    DDL beyond an idempotent insert."""
    created = {t.name for t in kw.get("tables", ())}
    dialect = connection.dialect.name
    new_watched = [t.name for t in WATCHED if t.name in created]
    if dialect == "sqlite":
        for table in new_watched:
            for op in ("INSERT", "UPDATE", "DELETE"):
                connection.exec_driver_sql(_SQLITE_TRIGGER.format(table=table, op=op))
    elif dialect == "postgresql":
        if new_watched:
            connection.exec_driver_sql(_PG_FUNCTION)
        for table in new_watched:
            connection.exec_driver_sql(_PG_TRIGGER.format(table=table))
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"no revision triggers for dialect {dialect!r}")
    connection.execute(
        text(
            "INSERT INTO registry_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING"
        )
    )
