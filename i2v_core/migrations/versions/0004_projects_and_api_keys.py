"""projects and API keys: every job and session turn belongs to a project; API keys

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("max_active_jobs", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_id"), ["id"], unique=True)
        batch_op.create_index(batch_op.f("ix_api_keys_project"), ["project"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_api_keys_secret_sha256"), ["secret_sha256"], unique=True
        )
    # Rows written before auth existed belong to the open project "".
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("project", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("key_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_project"), ["project"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_key_id"), ["key_id"], unique=False)
    with op.batch_alter_table("session_turns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("project", sa.String(length=64), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("session_turns", schema=None) as batch_op:
        batch_op.drop_column("project")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_key_id"))
        batch_op.drop_index(batch_op.f("ix_jobs_project"))
        batch_op.drop_column("key_id")
        batch_op.drop_column("project")
    op.drop_table("api_keys")
