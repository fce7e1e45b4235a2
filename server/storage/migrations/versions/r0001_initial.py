"""Initial schema: users, sessions, personal access tokens, workspaces, memberships,
API keys and audit events.

Revision ID: 0001
Revises:
Create Date: 2025-11-22

Hand-written to match ``server.storage.models``; ``tests/server/test_storage.py`` checks that
``upgrade head`` leaves no difference against the models (``compare_metadata``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id(name: str = "id", nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(32), nullable=nullable)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("is_superadmin", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sa.CheckConstraint("status IN ('active', 'blocked')", name="ck_users_status"),
    )
    op.create_index("ix_users_created_at_id", "users", ["created_at", "id"])

    op.create_table(
        "sessions",
        _id(),
        _id("user_id"),
        sa.Column("token_hash", sa.String(64), nullable=False),
        _ts("created_at"),
        _ts("last_seen_at"),
        _ts("expires_at"),
        _ts("absolute_expires_at"),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_hash", name="uq_sessions_token_hash"),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])

    op.create_table(
        "personal_access_tokens",
        _id(),
        _id("user_id"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scopes", _json(), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("expires_at"),
        _ts("last_used_at", nullable=True),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_personal_access_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_personal_access_tokens_user_id_users",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("token_hash", name="uq_personal_access_tokens_token_hash"),
        sa.CheckConstraint(
            "status IN ('active', 'revoked')", name="ck_personal_access_tokens_status"
        ),
    )
    op.create_index(
        "ix_personal_access_tokens_user_id_created_at_id",
        "personal_access_tokens",
        ["user_id", "created_at", "id"],
    )

    op.create_table(
        "workspaces",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("settings", _json(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_workspaces"),
        sa.UniqueConstraint("slug", name="uq_workspaces_slug"),
    )
    op.create_index("ix_workspaces_created_at_id", "workspaces", ["created_at", "id"])

    op.create_table(
        "memberships",
        _id("workspace_id"),
        _id("user_id"),
        sa.Column("role", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("workspace_id", "user_id", name="pk_memberships"),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name="fk_memberships_workspace_id_workspaces",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_memberships_user_id_users", ondelete="CASCADE"
        ),
        sa.CheckConstraint(
            "role IN ('viewer', 'operator', 'editor', 'admin', 'owner')",
            name="ck_memberships_role",
        ),
    )
    op.create_index(
        "ix_memberships_workspace_id_created_at_user_id",
        "memberships",
        ["workspace_id", "created_at", "user_id"],
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])

    op.create_table(
        "api_keys",
        _id(),
        _id("workspace_id"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("scopes", _json(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("expires_at", nullable=True),
        _ts("last_used_at", nullable=True),
        _id("created_by"),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name="fk_api_keys_workspace_id_workspaces",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        sa.CheckConstraint(
            "role IN ('viewer', 'operator', 'editor', 'admin')", name="ck_api_keys_role"
        ),
        sa.CheckConstraint("status IN ('active', 'revoked')", name="ck_api_keys_status"),
    )
    op.create_index(
        "ix_api_keys_workspace_id_created_at_id",
        "api_keys",
        ["workspace_id", "created_at", "id"],
    )

    op.create_table(
        "audit_events",
        _id(),
        _id("workspace_id", nullable=True),
        sa.Column("actor_type", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=True),
        sa.Column("actor_label", sa.String(320), nullable=True),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target_type", sa.String(64), nullable=True),
        sa.Column("target_id", sa.String(64), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.CheckConstraint(
            "actor_type IN ('user', 'api_key', 'worker', 'run', 'system')",
            name="ck_audit_events_actor_type",
        ),
    )
    op.create_index(
        "ix_audit_events_workspace_id_created_at_id",
        "audit_events",
        ["workspace_id", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("api_keys")
    op.drop_table("memberships")
    op.drop_table("workspaces")
    op.drop_table("personal_access_tokens")
    op.drop_table("sessions")
    op.drop_table("users")
