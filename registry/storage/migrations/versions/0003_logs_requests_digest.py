"""Logs and JSON results of attempts, timed requests, and the digest of the last apply.

Revision '0003', after '0002'. Only adds nullable columns and one table, so every record of an
earlier database is kept as it is:

- ``attempts.log``: the attempt's captured log (Python logging records, stdout, stderr), bounded
  on the worker; ``attempts.result_json``: the job's return value as JSON (``result`` keeps the
  short text summary, and the repr of a value that is not JSON);
- ``requests.due``: a trigger for a later time (``trigger --at``); ``requests.scheduled``: the
  fire time a backfill request's run carries as ``ctx.scheduled``;
- ``registry_digest``: one row, the digest of the files last applied, so an unchanged registry
  is not validated again at the next ``planner run FILES``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("attempts", sa.Column("log", sa.Text(), nullable=True))
    op.add_column("attempts", sa.Column("result_json", sa.JSON(none_as_null=True), nullable=True))
    op.add_column("requests", sa.Column("due", sa.DateTime(timezone=True), nullable=True))
    op.add_column("requests", sa.Column("scheduled", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "registry_digest",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("registry_digest")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("scheduled")
        batch.drop_column("due")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("result_json")
        batch.drop_column("log")
