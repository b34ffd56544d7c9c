"""Job store tables (SQLAlchemy Core), portable between SQLite and PostgreSQL.

Times are UNIX epoch seconds in double columns: they compare the same way on both engines, which a
SQLite ``DATETIME`` (text, no time zone) would not. JSON fields use SQLAlchemy's ``JSON`` type (TEXT on
SQLite, json on PostgreSQL).

These definitions describe the schema at the newest migration (``migrations/versions``); the tables are
created and changed only by those migrations, never by ``create_all``. Change both together.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_SeqType = BigInteger().with_variant(Integer(), "sqlite")

jobs = Table(
    "ar_jobs",
    metadata,
    # seq is the FIFO order within a priority: ids are random UUIDs and timestamps can tie.
    Column("seq", _SeqType, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    # Denormalised copies of the request's shared parameters, so claims compare jobs without decoding JSON.
    Column("model", String(256), nullable=True),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("steps", Integer, nullable=False),
    Column("sampler", String(64), nullable=False),
    Column("cfg_scale", Double, nullable=False),
    Column("batch_size", Integer, nullable=False),
    Column("request", JSON, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("idempotency_key", String(256), nullable=True, unique=True),
    Column("created_at", Double, nullable=False),
    Column("started_at", Double, nullable=True),
    Column("finished_at", Double, nullable=True),
    Column("deadline_at", Double, nullable=False),
    Column("not_before", Double, nullable=False),
    Column("lease_until", Double, nullable=True),
    Column("worker_id", String(256), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("step", Integer, nullable=False, default=0),
    Column("total_steps", Integer, nullable=False, default=0),
    Column("error", JSON, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    # Set after an out_of_memory failure: the next attempt asks the worker for its memory-saving options.
    Column("memory_saving", Boolean, nullable=False, default=False),
    # Key id (auth.key_id) of the API key that submitted the job; null without keys. Listings filter on it.
    Column("owner", String(64), nullable=True),
    # Hash of the parameters beyond the columns above that coalesced jobs must share (jobs/shape.py);
    # "" for a plain text-to-image job.
    Column("shape", String(64), nullable=False, default="", server_default=""),
    Index("ar_jobs_run_order", "status", "priority", "seq"),
    Index("ar_jobs_lease", "status", "lease_until"),
    Index("ar_jobs_owner", "owner", "seq"),
)

results = Table(
    "ar_job_results",
    metadata,
    Column("job_id", String(36), ForeignKey("ar_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("path", String(1024), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("meta", JSON, nullable=False),
    Column("infotext", Text, nullable=False, default=""),
)

# The latest latent preview of a running job: rewritten every few steps, so it lives apart from the job
# row that every job read and /queue fetch. Deleted when the job ends.
previews = Table(
    "ar_job_previews",
    metadata,
    Column("job_id", String(36), ForeignKey("ar_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("step", Integer, nullable=False),
    Column("image", Text, nullable=False),
)

# Remote workers registered by URL, shared by every gateway on the store (migration 0005). ``holder`` is
# the gateway that may send the worker calls until ``lease_until`` (gateway/fleet/registry.py).
workers = Table(
    "ar_workers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("url", String(512), nullable=False, unique=True),
    # "config" (a gateway's workers.urls / --worker-url) or "api" (POST /api/v1/workers).
    Column("source", String(16), nullable=False),
    Column("added_at", Double, nullable=False),
    # Key id (auth.key_id) of the admin key that registered it through the API; null otherwise.
    Column("added_by", String(64), nullable=True),
    Column("holder", String(128), nullable=True),
    Column("lease_until", Double, nullable=True),
)

# Gateways alive on the store: each renews ``seen_until`` with its worker leases, so every gateway knows
# how many share the registered workers.
gateways = Table(
    "ar_gateways",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("started_at", Double, nullable=False),
    Column("seen_until", Double, nullable=False),
)
