"""Workers shared by a fleet of gateways: registered by URL, each driven by one gateway at a time.

Revision ID: 0005_workers
Revises: 0004_job_shape
Create Date: 2026-12-02

``ar_workers`` holds every remote worker registered by URL (a gateway's config list and ``--worker-url``,
or ``POST /api/v1/workers``), with the lease that says which gateway may send it calls: ``holder`` (a
gateway id) until ``lease_until``. ``ar_gateways`` lists the gateways alive on the store (each renews its
row), so each can tell its fair share of the workers. Local workers a gateway supervises are not recorded:
they stay private to it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_workers"
down_revision: str | Sequence[str] | None = "0004_job_shape"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ar_workers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("url", sa.String(512), nullable=False, unique=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("added_at", sa.Double, nullable=False),
        sa.Column("added_by", sa.String(64), nullable=True),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("lease_until", sa.Double, nullable=True),
    )
    op.create_table(
        "ar_gateways",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("seen_until", sa.Double, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ar_gateways")
    op.drop_table("ar_workers")
