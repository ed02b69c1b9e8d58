"""The first release's schema: registry, run history, saved state, requests and decisions.

Revision '0001', the first. Databases created by the first release carry no ``alembic_version``
table; ``registry.storage.schema_version`` takes such a database to be at this revision.

The tables are the ones ``registry.storage.tables`` described at the first release, spelled out here
so that later changes to ``tables`` do not change what this revision creates. Besides them, the
revision installs the triggers that bump ``registry_revision`` on every change of ``processes`` or
``settings`` (one per table and operation on SQLite, one statement-level trigger per table calling
``planner_bump_registry_revision()`` on PostgreSQL) and the counter's one row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_WATCHED = ("processes", "settings")

_SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS {table}_revision_{op} AFTER {op} ON {table}
BEGIN
    UPDATE registry_revision SET revision = revision + 1 WHERE id = 1;
END
"""

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


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _serial() -> sa.types.TypeEngine[int]:
    # SQLite's rowid alias must be spelled INTEGER; elsewhere a 64-bit identity
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "processes",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("hold", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("max_active", sa.Integer(), nullable=False),
        sa.Column("first_applied", _when(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
    )
    op.create_table(
        "settings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("document", sa.JSON(), nullable=False),
    )
    op.create_table(
        "registry_revision",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(255), primary_key=True),
        sa.Column("process", sa.String(200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("scheduled", _when(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        sa.Column("created", _when(), nullable=False),
        sa.Column("retry_at", _when(), nullable=True),
        sa.Column("ended", _when(), nullable=True),
    )
    op.create_index("ix_runs_process_created", "runs", ["process", "created"])
    op.create_index("ix_runs_process_seq", "runs", ["process", "seq"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "attempts",
        sa.Column(
            "run_id",
            sa.String(255),
            sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("attempt", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("process", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("scheduled", _when(), nullable=False),
        sa.Column("queued", _when(), nullable=False),
        sa.Column("start", _when(), nullable=True),
        sa.Column("end", _when(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("error_type", sa.String(255), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_traceback", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
    )
    op.create_index("ix_attempts_queued", "attempts", ["queued"])
    op.create_index("ix_attempts_process_queued", "attempts", ["process", "queued"])
    op.create_index("ix_attempts_process_status_end", "attempts", ["process", "status", "end"])
    op.create_table(
        "process_state",
        sa.Column("process", sa.String(200), primary_key=True),
        sa.Column("state", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("reset_at", _when(), nullable=True),
    )
    op.create_table(
        "requests",
        sa.Column("id", _serial(), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("process", sa.String(200), nullable=True),
        sa.Column("run_id", sa.String(255), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("force", sa.Boolean(), nullable=False),
        sa.Column("created", _when(), nullable=False),
        sa.Column("handled", _when(), nullable=True),
    )
    op.create_index("ix_requests_handled_id", "requests", ["handled", "id"])
    op.create_table(
        "decisions",
        sa.Column("id", _serial(), primary_key=True),
        sa.Column("at", _when(), nullable=False),
        sa.Column("process", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
    )
    op.create_index("ix_decisions_at", "decisions", ["at"])
    op.create_index("ix_decisions_process_at", "decisions", ["process", "at"])

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in _WATCHED:
            for operation in ("INSERT", "UPDATE", "DELETE"):
                op.execute(_SQLITE_TRIGGER.format(table=table, op=operation))
    elif dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in _WATCHED:
            op.execute(_PG_TRIGGER.format(table=table))
    else:
        raise NotImplementedError(f"no revision triggers for dialect {dialect!r}")
    op.execute("INSERT INTO registry_revision (id, revision) VALUES (1, 0)")
