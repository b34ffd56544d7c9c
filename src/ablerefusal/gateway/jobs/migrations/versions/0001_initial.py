"""The job store as ``create_all`` made it before migrations (commit 127c814).

Revision ID: 0001_initial
Revises:
Create Date: 2026-12-02

Spelled out column by column rather than taken from ``tables.metadata``: this revision must stay what
that code created, whatever the tables become later.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ar_jobs",
        sa.Column("seq", _Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("sampler", sa.String(64), nullable=False),
        sa.Column("cfg_scale", sa.Double, nullable=False),
        sa.Column("batch_size", sa.Integer, nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(256), nullable=True, unique=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("started_at", sa.Double, nullable=True),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.Column("deadline_at", sa.Double, nullable=False),
        sa.Column("not_before", sa.Double, nullable=False),
        sa.Column("lease_until", sa.Double, nullable=True),
        sa.Column("worker_id", sa.String(256), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("total_steps", sa.Integer, nullable=False),
        sa.Column("preview", sa.Text, nullable=True),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("memory_saving", sa.Boolean, nullable=False),
    )
    op.create_index("ar_jobs_run_order", "ar_jobs", ["status", "priority", "seq"])
    op.create_index("ar_jobs_lease", "ar_jobs", ["status", "lease_until"])
    op.create_table(
        "ar_job_results",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("ar_jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("infotext", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ar_job_results")
    op.drop_table("ar_jobs")
