"""Jobs belong to the API key that submitted them (security review, finding 10).

Revision ID: 0003_job_owner
Revises: 0002_job_previews
Create Date: 2026-12-02

``owner`` holds the key id (``auth.key_id``: a hash prefix, never the key). Rows from before this revision,
and every job of a gateway without keys, have none: only admin keys (or a key-less gateway) see those.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_job_owner"
down_revision: str | Sequence[str] | None = "0002_job_previews"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ar_jobs", sa.Column("owner", sa.String(64), nullable=True))
    op.create_index("ar_jobs_owner", "ar_jobs", ["owner", "seq"])


def downgrade() -> None:
    op.drop_index("ar_jobs_owner", table_name="ar_jobs")
    op.drop_column("ar_jobs", "owner")
