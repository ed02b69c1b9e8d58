"""The snapshot of the validated registry.

Revision '0004', after '0003'. Only adds one table, so every record of an earlier database is kept
as it is:

- ``registry_snapshot``: one row, the registry as a writer last validated it (pickled), with the
  registry revision it is of and the identity of the planner that validated it, so that reading
  an unchanged registry validates nothing. The table has no revision trigger: storing a snapshot
  is no change of the registry. An upgraded database has no snapshot yet; the next write of the
  registry stores one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_snapshot",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("identity", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("registry_snapshot")
