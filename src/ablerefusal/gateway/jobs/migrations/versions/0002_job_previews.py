"""Latest previews move out of the job row into their own table (issue 10, defect 7).

Revision ID: 0002_job_previews
Revises: 0001_initial
Create Date: 2026-12-02

A preview was rewritten into ``ar_jobs.preview`` every 0.2 s and read back with every job. Previews are
short-lived, so none is carried over.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_job_previews"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ar_job_previews",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("ar_jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("image", sa.Text, nullable=False),
    )
    # Plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35), not batch mode: batch mode would copy and drop
    # ar_jobs, and dropping it cascades to the result rows that reference it.
    op.drop_column("ar_jobs", "preview")


def downgrade() -> None:
    op.add_column("ar_jobs", sa.Column("preview", sa.Text, nullable=True))
    op.drop_table("ar_job_previews")
