"""Jobs carry a coalescing shape: the hash of every parameter beyond the plain ones that must match for two
jobs to share one pipeline call (mode, strength, input image sizes, hires, LoRAs, ControlNet units …).

Revision ID: 0004_job_shape
Revises: 0003_job_owner
Create Date: 2026-12-02

A claim compares ``shape`` like the denormalised ``model``/``width``/… columns, without decoding the request
JSON. Rows from before this revision are plain text-to-image jobs: their shape is the empty string, which
is also what ``jobs.shape.coalesce_shape`` gives such a request.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_job_shape"
down_revision: str | Sequence[str] | None = "0003_job_owner"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ar_jobs") as batch:
        batch.add_column(sa.Column("shape", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("ar_jobs") as batch:
        batch.drop_column("shape")
