"""Gateway config versions: each workspace's count of changes to its providers, backends and
routes, which tells every process whether the routes it compiled are still current.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 17:00:30.972412
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_config_versions",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_gateway_config_versions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_gateway_config_versions")),
    )


def downgrade() -> None:
    op.drop_table("gateway_config_versions")
