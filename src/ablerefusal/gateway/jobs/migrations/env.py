"""Alembic environment: migrations run on the connection ``jobs.migrate`` hands over, in its transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from ablerefusal.gateway.jobs.tables import metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run job store migrations through `ablerefusal db upgrade`, not the alembic command")

# render_as_batch: SQLite alters most columns only by copying the table; batch mode does that for us.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
