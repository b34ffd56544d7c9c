"""Schema migrations: a store written before migrations existed is upgraded in place and its jobs still
read; rows written by another version stay readable; gateways starting at once do not race; the
``db`` commands."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text, update
from store_helpers import PG_URL, FakeClock, drop_schema, req
from typer.testing import CliRunner

from ablerefusal.cli import app
from ablerefusal.gateway.jobs import IdempotencyConflict, JobStore, migrate, tables
from ablerefusal.gateway.jobs.engine import make_engine
from ablerefusal.gateway.schemas import JobStatus

DATA = Path(__file__).with_name("data")
# Ids of the rows in data/schema_v0_*.sql.
COMPLETED = "00000000-0000-4000-8000-000000000001"
QUEUED = "00000000-0000-4000-8000-000000000002"
RUNNING = "00000000-0000-4000-8000-000000000003"
FAILED = "00000000-0000-4000-8000-000000000004"


def load_v0(backend: dict[str, Any]) -> None:
    """Create the pre-migration store (DDL and rows as commit 127c814 wrote them) at ``backend``."""
    if backend["schema"] is None:
        path = backend["url"].removeprefix("sqlite:///")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:
            conn.executescript((DATA / "schema_v0_sqlite.sql").read_text())
        return
    engine = make_engine(backend["url"], schema=backend["schema"])
    try:
        with engine.begin() as conn:
            # psycopg runs a parameterless multi-statement script as it is.
            conn.connection.driver_connection.execute((DATA / "schema_v0_postgresql.sql").read_text())  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_pre_migration_store_is_upgraded_and_its_jobs_read(backend: dict[str, Any]) -> None:
    load_v0(backend)
    # The dump's times are around 1.8e9; the queued job is eligible and not yet past its deadline then.
    store = JobStore(backend["url"], schema=backend["schema"], clock=FakeClock(1_800_000_010.0))
    try:
        assert migrate.current(store.engine) == migrate.head()
        columns = {c["name"] for c in inspect(store.engine).get_columns("ar_jobs")}
        assert "preview" not in columns and inspect(store.engine).has_table("ar_job_previews")

        done = store.get(COMPLETED)
        assert done.status == JobStatus.completed and done.request.batch_size == 2
        assert [(r.index, r.seed, r.image_url) for r in done.results] == [
            (0, 7, f"/outputs/{COMPLETED}/0.png"),
            (1, 8, f"/outputs/{COMPLETED}/1.png"),
        ]
        assert done.results[0].infotext == "a red cube\nSteps: 2"
        queued = store.get(QUEUED)
        assert queued.status == JobStatus.queued and queued.queue_position == 1 and queued.priority == 3
        running = store.get(RUNNING)
        assert running.status == JobStatus.running and running.request.model is None
        assert running.preview_url is None and (running.step, running.total_steps) == (2, 4)
        failed = store.get(FAILED)
        assert failed.error is not None and failed.error.code == "internal" and failed.attempts == 3
        assert store.counts().model_dump() == {
            "queued": 1,
            "running": 1,
            "completed": 1,
            "failed": 1,
            "cancelled": 0,
            "timed_out": 0,
        }
        # New jobs go after the old ones (the sequence carried over), and the old queued one runs first.
        fresh = store.submit(req(prompt="new", priority=3)).job
        assert fresh.queue_position == 2
        [claimed] = store.claim("w0")
        assert claimed.id == QUEUED
    finally:
        store.close()


def test_idempotency_key_of_a_pre_migration_job_still_conflicts(backend: dict[str, Any]) -> None:
    # The v0 row's hash is a placeholder, so any body under its key is "another body": a 422, not a new job.
    load_v0(backend)
    store = JobStore(backend["url"], schema=backend["schema"])
    try:
        with pytest.raises(IdempotencyConflict):
            store.submit(req(prompt="other"), idempotency_key="key-a")
        assert store.counts().queued == 1
    finally:
        store.close()


def test_rows_with_fields_this_version_does_not_know_stay_readable(backend: dict[str, Any]) -> None:
    store = JobStore(backend["url"], schema=backend["schema"])
    try:
        job = store.submit(req(prompt="from the future")).job
        newer = {**job.request.model_dump(mode="json"), "style_preset": "ink", "denoise": 0.5}
        with store.engine.begin() as conn:
            conn.execute(update(tables.jobs).where(tables.jobs.c.id == job.id).values(request=newer))
        read = store.get(job.id)
        assert read.request.prompt == "from the future" and "style_preset" not in read.request.model_dump()
        [claimed] = store.claim("w0")
        assert claimed.id == job.id and claimed.request.prompt == "from the future"
    finally:
        store.close()


def test_empty_database_gets_the_head_schema(backend: dict[str, Any]) -> None:
    store = JobStore(backend["url"], schema=backend["schema"])
    try:
        assert migrate.current(store.engine) == migrate.head()
        # The tables the migrations made are the ones the code describes.
        inspector = inspect(store.engine)
        for table in tables.metadata.sorted_tables:
            assert {c["name"] for c in inspector.get_columns(table.name)} == {c.name for c in table.columns}
    finally:
        store.close()


@pytest.mark.postgres
def test_gateways_starting_at_once_do_not_race_on_postgres() -> None:
    schema = f"t_mig_{uuid.uuid4().hex[:12]}"
    starters = 6
    barrier = threading.Barrier(starters)
    errors: list[BaseException] = []
    stores: list[JobStore] = []

    def start() -> None:
        try:
            barrier.wait()
            stores.append(JobStore(PG_URL, schema=schema))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start, daemon=True) for _ in range(starters)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        assert len(stores) == starters
        assert migrate.current(stores[0].engine) == migrate.head()
        with stores[0].engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        job = stores[1].submit(req()).job
        assert stores[2].get(job.id).status == JobStatus.queued
    finally:
        for store in stores:
            store.close()
        drop_schema(schema)


def test_db_upgrade_and_current_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    load_v0({"url": url, "schema": None})
    runner = CliRunner()
    before = runner.invoke(app, ["db", "current", "--database-url", url])
    assert before.exit_code == 0, before.output
    assert "none" in before.output.lower()
    upgraded = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert upgraded.exit_code == 0, upgraded.output
    assert migrate.head() in upgraded.output
    after = runner.invoke(app, ["db", "current", "--database-url", url])
    assert after.exit_code == 0 and migrate.head() in after.output
    store = JobStore(url, migrate_schema=False)
    try:
        assert store.get(QUEUED).queue_position == 1
    finally:
        store.close()
