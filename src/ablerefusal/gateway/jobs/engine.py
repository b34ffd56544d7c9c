"""One SQLAlchemy engine factory for both job store back ends.

* ``sqlite:///path`` — the embedded default. WAL so readers never block the writer, a busy timeout so
  concurrent writers (threads or other gateway processes) wait instead of failing, and write transactions
  opened with ``BEGIN IMMEDIATE`` so a claim's read and update hold the write lock together.
* ``postgresql://…`` — mapped to the psycopg 3 driver. ``schema`` (tests use a throw-away one) becomes the
  connection's ``search_path``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_S = 30.0
# Execution option a read-only unit of work sets to open a DEFERRED (shared) SQLite transaction.
READ_ONLY = "ablerefusal_read_only"
# Arbitrary constant naming the PostgreSQL advisory lock held while creating a schema.
SCHEMA_LOCK_KEY = 0x41424C47
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def normalize_url(url: str) -> str:
    """Map ``postgres://``/``postgresql://`` to the psycopg 3 driver; leave others as they are."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """Engine for a job store URL; creates the SQLite file's folder and the PostgreSQL schema if needed."""
    sa_url = make_url(normalize_url(url))
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        if schema is not None:
            raise ValueError("schema: only PostgreSQL job stores have schemas")
        return _sqlite_engine(sa_url.database)
    if backend == "postgresql":
        return _postgres_engine(str(sa_url.render_as_string(hide_password=False)), schema)
    raise ValueError(f"storage.database_url: unsupported scheme {sa_url.drivername!r}; use sqlite:/// or postgresql://")


def _sqlite_engine(database: str | None) -> Engine:
    if not database or database == ":memory:":
        # Each pooled connection would get its own empty in-memory database.
        raise ValueError("storage.database_url: SQLite needs a file path, e.g. sqlite:///./data/ablerefusal.db")
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{database}",
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook emit BEGIN itself instead of pysqlite's implicit one.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = "DEFERRED" if conn.get_execution_options().get(READ_ONLY) else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _postgres_engine(url: str, schema: str | None) -> Engine:
    connect_args: dict[str, Any] = {}
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema: {schema!r} is not a plain SQL identifier")
        connect_args["options"] = f"-csearch_path={schema}"
    engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    if schema is not None:
        with engine.begin() as conn:
            # IF NOT EXISTS still races (a unique violation) when several processes create it at once.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return engine
