"""gateway cache entries and request log

The AI gateway's traffic tables (``server.storage.gateway_traffic``): the response cache and
the request log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 13:41:47.819163
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("credential_id", sa.String(length=32), nullable=True),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("api", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("upstream_model", sa.String(length=200), nullable=True),
        sa.Column("route_id", sa.String(length=32), nullable=True),
        sa.Column("backend_id", sa.String(length=32), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("cache", sa.String(length=8), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Double(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("api IN ('openai', 'anthropic')", name=op.f("ck_gateway_requests_api")),
        sa.CheckConstraint(
            "cache IN ('HIT', 'MISS', 'BYPASS')", name=op.f("ck_gateway_requests_cache")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_gateway_requests_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_requests")),
    )
    with op.batch_alter_table("gateway_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_gateway_requests_backend_id_created_at", ["backend_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_gateway_requests_workspace_id_cache", ["workspace_id", "cache"], unique=False
        )
        batch_op.create_index(
            "ix_gateway_requests_workspace_id_created_at_id",
            ["workspace_id", "created_at", "id"],
            unique=False,
        )

    op.create_table(
        "gateway_cache_entries",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("route_id", sa.String(length=32), nullable=True),
        sa.Column("backend_id", sa.String(length=32), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("upstream_model", sa.String(length=200), nullable=False),
        sa.Column("api", sa.String(length=16), nullable=False),
        sa.Column(
            "response", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_hit_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "api IN ('openai', 'anthropic')", name=op.f("ck_gateway_cache_entries_api")
        ),
        sa.ForeignKeyConstraint(
            ["route_id"],
            ["gateway_routes.id"],
            name=op.f("fk_gateway_cache_entries_route_id_gateway_routes"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_gateway_cache_entries_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_gateway_cache_entries")),
    )
    with op.batch_alter_table("gateway_cache_entries", schema=None) as batch_op:
        batch_op.create_index("ix_gateway_cache_entries_expires_at", ["expires_at"], unique=False)
        batch_op.create_index("ix_gateway_cache_entries_route_id", ["route_id"], unique=False)
        batch_op.create_index(
            "ix_gateway_cache_entries_workspace_id_created_at_key",
            ["workspace_id", "created_at", "key"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("gateway_cache_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_gateway_cache_entries_workspace_id_created_at_key")
        batch_op.drop_index("ix_gateway_cache_entries_route_id")
        batch_op.drop_index("ix_gateway_cache_entries_expires_at")

    op.drop_table("gateway_cache_entries")
    with op.batch_alter_table("gateway_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_gateway_requests_workspace_id_created_at_id")
        batch_op.drop_index("ix_gateway_requests_workspace_id_cache")
        batch_op.drop_index("ix_gateway_requests_backend_id_created_at")

    op.drop_table("gateway_requests")
