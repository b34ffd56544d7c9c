"""Schema migrations of the job store (Alembic), run at gateway start and by ``ablerefusal db upgrade``.

The revisions live in ``migrations/versions`` as one linear chain (see docs/operations.md, "Schema
migrations", for adding one). ``upgrade`` runs in one transaction holding a lock, so several gateways
starting at once on one PostgreSQL store take turns: the first migrates, the others find the head.
A database created by ``create_all`` before migrations existed has the tables and no version row: it is
stamped at the first revision (which is exactly that schema) and upgraded from there.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The revision equal to the schema that create_all made before migrations existed.
BASELINE = "0001_initial"
# Arbitrary constant naming the PostgreSQL advisory lock held while migrating.
MIGRATE_LOCK_KEY = 0x41424C46


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py runs on this connection, inside our transaction.
    cfg.attributes["connection"] = conn
    return cfg


def head() -> str:
    """The newest revision this code knows."""
    heads = ScriptDirectory.from_config(_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"job store migrations must form one chain; heads: {heads}")
    return heads[0]


def current(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database (or one made before migrations)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the database to ``revision`` (default: the head); returns the revision it is at after."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Transaction-scoped: released on commit, also if this process dies mid-migration.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK_KEY})
        cfg = _config(conn)
        migration = MigrationContext.configure(conn)
        if migration.get_current_revision() is None and inspect(conn).has_table("ar_jobs"):
            command.stamp(cfg, BASELINE)
        command.upgrade(cfg, revision)
        return MigrationContext.configure(conn).get_current_revision()
