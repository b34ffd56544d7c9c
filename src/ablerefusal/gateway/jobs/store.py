"""The job store: the only place job state changes (DESIGN.md §5).

Every operation is one transaction. Transitions are guarded UPDATEs (``WHERE status IN (<legal sources>)``
and, for the dispatcher's calls, ``AND attempts = <the claim's attempt>``), so a terminal state never
changes and a dispatcher that lost its lease cannot touch a job another gateway has claimed since.

The store is synchronous (SQLAlchemy Core). Async callers run its methods in a thread:
``await asyncio.to_thread(store.get, job_id)`` (FastAPI's plain ``def`` endpoints do this by themselves).

Operations:

============================  ==========================================================================
``submit``                    validate limits, resolve the seed, honour Idempotency-Key → ``Submitted``
``get`` / ``list_jobs``       one job / a newest-first page with a status filter and total
``queue_status``/``counts``   counts by status, running jobs, queued jobs in run order with positions
``has_claimable``             cheap read: is any queued job eligible now?
``next_eligible_at``          cheap read: when the earliest queued job is (or becomes) eligible
``claim``                     atomically take the head job (+ compatible ones when coalescing)
``renew_leases``              extend the leases of running jobs a dispatcher still holds
``record_progress``           step/total (and latest previews) of one call's jobs; returns cancel requests
``preview``                   the latest preview of a running job (its own table, not the job row)
``add_result``                upsert one image (job, index): a retry overwrites
``complete``/``fail``         terminal outcomes of a running job
``time_out``                  queued or running → timed_out, keeping partial results
``cancel``                    queued → cancelled; running → cancel_requested (dispatcher finishes it)
``mark_cancelled``            running → cancelled (the dispatcher, after stopping the worker item)
``retry``                     retryable failure → queued with backoff, or failed after max_attempts
``release``                   undo a claim that never started (busy worker, shutdown): queued, no attempt
``requeue_expired_leases``    running jobs whose lease lapsed (dead gateway) → queued / final state
``expire_deadlines``          queued jobs past their deadline → timed_out
``delete``                    remove a finished job; returns its result paths for the caller to unlink
``gallery_page``/``_models``   stored images newest first (model / prompt filters); models that made any
``result_path``               the output-relative path of one image
============================  ==========================================================================
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, and_, delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ablerefusal.gateway.jobs import migrate, tables
from ablerefusal.gateway.jobs.convert import Row, job_from_row, result_from_row
from ablerefusal.gateway.jobs.engine import READ_ONLY, make_engine
from ablerefusal.gateway.jobs.errors import IdempotencyConflict, JobNotFinished, JobNotFound, QueueFull
from ablerefusal.gateway.jobs.selection import Candidate, select_batch
from ablerefusal.gateway.jobs.state import backoff_delay, sources_of
from ablerefusal.gateway.schemas import (
    TERMINAL_STATUSES,
    GenerateRequest,
    Job,
    JobError,
    JobPage,
    JobResult,
    JobStatus,
    QueueCounts,
    QueueStatus,
)
from ablerefusal.gateway.settings import QueueSettings
from ablerefusal.protocol import SEED_MAX

J = tables.jobs
R = tables.results
P = tables.previews

# A claim looks at this many eligible jobs at most: enough to fill a batch past incompatible ones, small
# enough that PostgreSQL's row locks on the window stay cheap.
CLAIM_WINDOW = 128
MAX_PAGE = 500
# Arbitrary constant naming the PostgreSQL advisory lock that serialises submits.
SUBMIT_LOCK_KEY = 0x41424C45
# PostgreSQL NOTIFY channel on which a store announces claimable jobs (payload: the store's schema), so
# idle dispatchers of every gateway on the database wake at once.
NOTIFY_CHANNEL = "ablerefusal_jobs"


class Submitted(NamedTuple):
    """Result of ``submit``: the job, and False when an Idempotency-Key replay returned an existing one."""

    job: Job
    created: bool


@dataclass(frozen=True)
class ClaimedJob:
    """A job a dispatcher now runs: ``attempt`` is the fencing token for every later call about it."""

    id: str
    attempt: int
    request: GenerateRequest
    deadline_at: float
    memory_saving: bool
    # The job as it stood when claimed (running), for the status event: no read-back needed.
    job: Job | None = field(default=None, compare=False, hash=False)


class GalleryRow(NamedTuple):
    """One stored image with what the gallery shows of its job (``gallery_page``)."""

    job_id: str
    image_index: int
    path: str
    seed: int
    infotext: str
    request: dict[str, Any]
    model: str | None
    created_at: float


class Preview(NamedTuple):
    """The latest latent preview of a running job."""

    step: int
    jpeg_base64: str


def request_hash(request: GenerateRequest) -> str:
    """Fingerprint of a request body as the client sent it (before defaults that depend on the workers
    are filled in and before the seed is resolved), for Idempotency-Key."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def timeout_error(message: str = "the job's deadline passed") -> JobError:
    return JobError(code="timeout", message=message)


class JobStore:
    """Persistent job queue on SQLite or PostgreSQL (see the module docstring for the operations)."""

    def __init__(
        self,
        url: str,
        queue: QueueSettings | None = None,
        *,
        schema: str | None = None,
        clock: Callable[[], float] = time.time,
        migrate_schema: bool = True,
    ) -> None:
        """Open the store at ``url`` and bring its schema to the newest migration (``migrate=False``
        leaves the schema alone); ``clock`` is injectable for tests."""
        self.settings = queue or QueueSettings()
        self._clock = clock
        self.engine = make_engine(url, schema=schema)
        postgres = self.engine.dialect.name == "postgresql"
        # Where dispatchers listen for new jobs (None: SQLite, one gateway per file, nothing to hear).
        self.notify_channel = NOTIFY_CHANNEL if postgres else None
        self.notify_payload = schema or ""
        self.listen_url = (
            self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False) if postgres else None
        )
        if migrate_schema:
            migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- units of work -------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                yield conn

    def ping(self) -> bool:
        """Whether the database answers (for /ready)."""
        try:
            with self._read() as conn:
                conn.execute(select(1))
        except OperationalError:
            return False
        return True

    # -- reading -------------------------------------------------------------------------------------

    @staticmethod
    def _queue_positions(conn: Connection, ids: Sequence[str]) -> dict[str, int]:
        """1-based run-order positions of these queued jobs, in one query for the whole page."""
        ranked = (
            select(J.c.id, func.row_number().over(order_by=(J.c.priority.desc(), J.c.seq)).label("position"))
            .where(J.c.status == JobStatus.queued.value)
            .subquery()
        )
        rows = conn.execute(select(ranked.c.id, ranked.c.position).where(ranked.c.id.in_(ids))).all()
        return {r.id: int(r.position) for r in rows}

    def _to_jobs(self, conn: Connection, rows: Sequence[Row], positions: Mapping[str, int] | None = None) -> list[Job]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        by_job: dict[str, list[Row]] = {i: [] for i in ids}
        for res in conn.execute(select(R).where(R.c.job_id.in_(ids))).mappings():
            by_job[res["job_id"]].append(res)
        queued = [r["id"] for r in rows if r["status"] == JobStatus.queued.value]
        if positions is None and queued:
            positions = self._queue_positions(conn, queued)
        running = [r["id"] for r in rows if r["status"] == JobStatus.running.value]
        with_preview: set[str] = set()
        if running:
            with_preview = {r.job_id for r in conn.execute(select(P.c.job_id).where(P.c.job_id.in_(running)))}
        return [
            job_from_row(
                row,
                by_job[row["id"]],
                (positions or {}).get(row["id"]),
                has_preview=row["id"] in with_preview,
            )
            for row in rows
        ]

    def preview(self, job_id: str) -> Preview | None:
        """The latest preview of a running job; None when it has none (yet, or any more)."""
        with self._read() as conn:
            row = conn.execute(select(P.c.step, P.c.image).where(P.c.job_id == job_id)).first()
        return None if row is None else Preview(step=int(row.step), jpeg_base64=row.image)

    def _get(self, conn: Connection, job_id: str) -> Job:
        row = conn.execute(select(J).where(J.c.id == job_id)).mappings().first()
        if row is None:
            raise JobNotFound(job_id)
        return self._to_jobs(conn, [row])[0]

    def get(self, job_id: str) -> Job:
        """The job with its results and queue position; ``JobNotFound`` if there is none."""
        with self._read() as conn:
            return self._get(conn, job_id)

    def owner_of(self, job_id: str) -> str | None:
        """Key id of the API key that submitted the job (None without keys); ``JobNotFound`` if none."""
        with self._read() as conn:
            row = conn.execute(select(J.c.owner).where(J.c.id == job_id)).first()
        if row is None:
            raise JobNotFound(job_id)
        return row.owner

    def list_jobs(
        self, *, status: JobStatus | None = None, offset: int = 0, limit: int = 50, owner: str | None = None
    ) -> JobPage:
        """Jobs newest first, optionally only one status and only one owner's (``owner``: a key id);
        ``total`` counts every match."""
        if offset < 0:
            raise ValueError("offset: must be ≥ 0")
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit: must be between 1 and {MAX_PAGE}")
        where = [] if status is None else [J.c.status == status.value]
        if owner is not None:
            where.append(J.c.owner == owner)
        with self._read() as conn:
            total = conn.execute(select(func.count()).select_from(J).where(*where)).scalar_one()
            rows = conn.execute(select(J).where(*where).order_by(J.c.seq.desc()).offset(offset).limit(limit)).mappings()
            items = self._to_jobs(conn, list(rows))
        return JobPage(items=items, total=int(total), offset=offset, limit=limit)

    def counts(self) -> QueueCounts:
        """Jobs by status (also what /metrics exports as queue depth)."""
        with self._read() as conn:
            return self._counts(conn)

    def _counts(self, conn: Connection) -> QueueCounts:
        rows = conn.execute(select(J.c.status, func.count()).group_by(J.c.status)).all()
        return QueueCounts(**{str(status): int(n) for status, n in rows})

    def queue_status(self, *, limit: int = 100, owner: str | None = None) -> QueueStatus:
        """Counts, running jobs and the first ``limit`` queued jobs in run order (1-based positions).
        With ``owner`` (a key id) the lists hold only that owner's jobs; counts and positions stay global."""
        mine = [] if owner is None else [J.c.owner == owner]
        with self._read() as conn:
            counts = self._counts(conn)
            running = conn.execute(
                select(J).where(J.c.status == JobStatus.running.value, *mine).order_by(J.c.started_at)
            ).mappings()
            queued_rows = list(
                conn.execute(
                    select(J)
                    .where(J.c.status == JobStatus.queued.value, *mine)
                    .order_by(J.c.priority.desc(), J.c.seq)
                    .limit(limit)
                ).mappings()
            )
            if owner is None:
                positions = {r["id"]: i + 1 for i, r in enumerate(queued_rows)}
            else:
                positions = self._queue_positions(conn, [r["id"] for r in queued_rows])
            return QueueStatus(
                counts=counts,
                running=self._to_jobs(conn, list(running)),
                queued=self._to_jobs(conn, queued_rows, positions),
                max_queue_length=self.settings.max_queue_length,
            )

    # -- submit --------------------------------------------------------------------------------------

    def submit(
        self,
        request: GenerateRequest,
        *,
        idempotency_key: str | None = None,
        body_hash: str | None = None,
        owner: str | None = None,
        shape: str = "",
    ) -> Submitted:
        """Store a validated request as a queued job.

        The seed is resolved here (``-1`` → a random seed whose images all stay ≤ 2**32-1) so a retry draws
        the same images. Raises ``QueueFull`` at ``max_queue_length`` queued jobs and
        ``IdempotencyConflict`` when ``idempotency_key`` was used with another body. ``body_hash`` is
        ``request_hash`` of the request as the client sent it, when ``request`` has had defaults filled
        in since (the hash of ``request`` itself otherwise). ``owner`` is the submitting key's id. ``shape``
        is the job's coalescing shape (``jobs.shape.coalesce_shape``; "" for plain text-to-image).
        """
        body_hash = body_hash or request_hash(request)
        try:
            return self._submit(request, body_hash, idempotency_key, owner, shape)
        except IntegrityError:
            if idempotency_key is None:
                raise
            # A concurrent submit with the same key won the insert: answer like a replay.
            with self._read() as conn:
                found = self._replay(conn, idempotency_key, body_hash)
            if found is None:
                raise
            return found

    def _replay(self, conn: Connection, key: str, body_hash: str) -> Submitted | None:
        row = conn.execute(select(J.c.id, J.c.request_hash).where(J.c.idempotency_key == key)).first()
        if row is None:
            return None
        if row.request_hash != body_hash:
            raise IdempotencyConflict(key, row.id)
        return Submitted(self._get(conn, row.id), created=False)

    def _submit(
        self, request: GenerateRequest, body_hash: str, key: str | None, owner: str | None, shape: str
    ) -> Submitted:
        now = self._clock()
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                # READ COMMITTED lets two gateways count the same queue at once and both insert past
                # the limit; this transaction-scoped lock serialises submits (SQLite's BEGIN IMMEDIATE
                # already does).
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SUBMIT_LOCK_KEY})
            if key is not None and (found := self._replay(conn, key, body_hash)) is not None:
                return found
            # The queue length for the limit, and the jobs that will run before this one (same or higher
            # priority: it is the newest) for its position, in one read.
            queued, ahead = conn.execute(
                select(func.count(), func.count().filter(J.c.priority >= request.priority))
                .select_from(J)
                .where(J.c.status == JobStatus.queued.value)
            ).one()
            if queued >= self.settings.max_queue_length:
                raise QueueFull(int(queued), self.settings.max_queue_length, self.settings.retry_after_s)
            seed = request.seed
            if seed < 0:
                seed = secrets.randbelow(SEED_MAX - request.batch_size + 2)
            stored = request.model_copy(update={"seed": seed})
            timeout = self.settings.default_timeout_s
            if request.timeout_s is not None:
                timeout = min(timeout, request.timeout_s)
            row = (
                conn.execute(
                    insert(J)
                    .values(
                        id=str(uuid.uuid4()),
                        status=JobStatus.queued.value,
                        priority=request.priority,
                        model=request.model,
                        width=request.width,
                        height=request.height,
                        steps=request.steps,
                        sampler=request.sampler,
                        cfg_scale=request.cfg_scale,
                        batch_size=request.batch_size,
                        request=stored.model_dump(mode="json"),
                        request_hash=body_hash,
                        idempotency_key=key,
                        owner=owner,
                        shape=shape,
                        created_at=now,
                        deadline_at=now + timeout,
                        not_before=now,
                        attempts=0,
                        step=0,
                        total_steps=request.steps,
                        cancel_requested=False,
                        memory_saving=False,
                    )
                    .returning(*J.c)
                )
                .mappings()
                .one()
            )
            self._announce(conn)
            # A new job has no results yet: what was inserted is the whole job.
            return Submitted(job_from_row(row, [], int(ahead) + 1), created=True)

    # -- claiming ------------------------------------------------------------------------------------

    def _eligible(self, now: float) -> Any:
        return and_(J.c.status == JobStatus.queued.value, J.c.not_before <= now, J.c.deadline_at > now)

    def has_claimable(self) -> bool:
        """Cheap read: is any queued job eligible to run now? (Dispatchers use ``next_eligible_at``.)"""
        with self._read() as conn:
            return conn.execute(select(J.c.id).where(self._eligible(self._clock())).limit(1)).first() is not None

    def next_eligible_at(self) -> float | None:
        """When the earliest queued job may run (now or in the past: claim; later: a retry's backoff),
        as store clock time; None when no queued job can run before its deadline."""
        now = self._clock()
        with self._read() as conn:
            first = conn.execute(
                select(func.min(J.c.not_before)).where(J.c.status == JobStatus.queued.value, J.c.deadline_at > now)
            ).scalar_one()
        return None if first is None else float(first)

    def _announce(self, conn: Connection) -> None:
        """Tell idle dispatchers on other gateways that a job can be claimed (sent when this commits)."""
        if self.notify_channel is not None:
            conn.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": self.notify_channel, "payload": self.notify_payload},
            )

    def claim(
        self,
        worker_id: str,
        *,
        loaded_model: str | None = None,
        max_images: int = 1,
        coalesce: bool = False,
        per_item_cfg: bool = False,
    ) -> list[ClaimedJob]:
        """Atomically move the next job (and, when ``coalesce``, compatible ones) to running.

        ``per_item_cfg``: the worker applies guidance per image, so jobs may differ in CFG scale.

        Selection follows ``selection.select_batch``. On PostgreSQL the window of candidates is read with
        ``FOR UPDATE SKIP LOCKED`` so concurrent gateways take disjoint jobs; on SQLite the transaction is
        ``BEGIN IMMEDIATE``. Each UPDATE is also guarded by ``status = 'queued'``, so a job is never claimed
        twice whatever the engine. Returns the claimed jobs, head first; empty when nothing is eligible.
        """
        now = self._clock()
        with self._write() as conn:
            rows = conn.execute(
                select(
                    J.c.id,
                    J.c.priority,
                    J.c.seq,
                    J.c.model,
                    J.c.width,
                    J.c.height,
                    J.c.steps,
                    J.c.sampler,
                    J.c.cfg_scale,
                    J.c.batch_size,
                    J.c.shape,
                    J.c.created_at,
                    J.c.not_before,
                )
                .where(self._eligible(now))
                .order_by(J.c.priority.desc(), J.c.seq)
                .limit(CLAIM_WINDOW)
                .with_for_update(skip_locked=True)
            ).all()
            candidates = [
                Candidate(
                    id=r.id,
                    priority=r.priority,
                    seq=r.seq,
                    model=r.model,
                    width=r.width,
                    height=r.height,
                    steps=r.steps,
                    sampler=r.sampler,
                    cfg_scale=r.cfg_scale,
                    batch_size=r.batch_size,
                    eligible_since=max(r.created_at, r.not_before),
                    shape_key=r.shape,
                )
                for r in rows
            ]
            chosen = select_batch(
                candidates,
                loaded_model=loaded_model,
                max_images=max_images,
                coalesce=coalesce,
                now=now,
                max_skip_s=self.settings.max_priority_skip_s,
                per_item_cfg=per_item_cfg,
            )
            taken_rows: list[Row] = []
            for cand in chosen:
                taken = (
                    conn.execute(
                        update(J)
                        .where(J.c.id == cand.id, J.c.status == JobStatus.queued.value)
                        .values(
                            status=JobStatus.running.value,
                            worker_id=worker_id,
                            attempts=J.c.attempts + 1,
                            started_at=now,
                            lease_until=now + self.settings.lease_s,
                            step=0,
                        )
                        .returning(*J.c)
                    )
                    .mappings()
                    .first()
                )
                if taken is not None:
                    taken_rows.append(taken)
            # A retried job keeps the images its earlier attempt recorded: one read for all of them.
            jobs = self._to_jobs(conn, taken_rows)
            return [
                ClaimedJob(
                    id=job.id,
                    attempt=job.attempts,
                    request=job.request,
                    deadline_at=float(row["deadline_at"]),
                    memory_saving=bool(row["memory_saving"]),
                    job=job,
                )
                for row, job in zip(taken_rows, jobs, strict=True)
            ]

    # -- while running -------------------------------------------------------------------------------

    @staticmethod
    def _held(claims: Sequence[ClaimedJob]) -> Any:
        return or_(*(and_(J.c.id == c.id, J.c.attempts == c.attempt) for c in claims))

    def renew_leases(self, claims: Sequence[ClaimedJob]) -> set[str]:
        """Extend the leases of these running jobs; returns the ids still held (others were taken away)."""
        if not claims:
            return set()
        now = self._clock()
        with self._write() as conn:
            rows = conn.execute(
                update(J)
                .where(self._held(claims), J.c.status == JobStatus.running.value)
                .values(lease_until=now + self.settings.lease_s)
                .returning(J.c.id)
            ).all()
        return {r.id for r in rows}

    def record_progress(
        self,
        claims: Sequence[ClaimedJob],
        step: int,
        total: int,
        previews: Mapping[str, str] | None = None,
    ) -> set[str]:
        """Store step/total for running jobs (and ``previews``: job id → base64 JPEG, the latest preview
        of that job, kept apart from the job row); returns the ids of those a cancel request is waiting on."""
        if not claims:
            return set()
        with self._write() as conn:
            rows = conn.execute(
                update(J)
                .where(self._held(claims), J.c.status == JobStatus.running.value)
                .values(step=step, total_steps=total)
                .returning(J.c.id, J.c.cancel_requested)
            ).all()
            held = {r.id for r in rows}
            fresh = [
                {"job_id": job_id, "step": step, "image": image}
                for job_id, image in (previews or {}).items()
                if job_id in held
            ]
            if fresh:
                conn.execute(delete(P).where(P.c.job_id.in_([p["job_id"] for p in fresh])))
                conn.execute(insert(P), fresh)
        return {r.id for r in rows if r.cancel_requested}

    def cancel_requested(self, claims: Sequence[ClaimedJob]) -> set[str]:
        """Ids among these running jobs that a cancel request (from any gateway) is waiting on."""
        if not claims:
            return set()
        with self._read() as conn:
            rows = conn.execute(
                select(J.c.id).where(
                    self._held(claims), J.c.status == JobStatus.running.value, J.c.cancel_requested.is_(True)
                )
            ).all()
        return {r.id for r in rows}

    def add_result(
        self,
        job_id: str,
        index: int,
        path: str,
        seed: int,
        metadata: Mapping[str, Any],
        infotext: str,
        *,
        attempt: int | None = None,
    ) -> JobResult | None:
        """Record image ``index`` of a running job (``path`` relative to the output dir).

        Upsert per (job, index), so a retry overwrites. None when the job no longer runs under ``attempt``
        (cancelled, timed out or taken over): the caller then removes the file it wrote.
        """
        with self._write() as conn:
            guard = [J.c.id == job_id, J.c.status == JobStatus.running.value]
            if attempt is not None:
                guard.append(J.c.attempts == attempt)
            if conn.execute(select(J.c.id).where(*guard)).first() is None:
                return None
            conn.execute(delete(R).where(R.c.job_id == job_id, R.c.idx == index))
            row = {
                "job_id": job_id,
                "idx": index,
                "path": path,
                "seed": seed,
                "meta": dict(metadata),
                "infotext": infotext,
            }
            conn.execute(insert(R).values(**row))
        return result_from_row(row)

    # -- transitions ---------------------------------------------------------------------------------

    def _transition(
        self,
        conn: Connection,
        job_id: str,
        new: JobStatus,
        values: Mapping[str, Any],
        *,
        attempt: int | None = None,
        extra: Sequence[Any] = (),
    ) -> bool:
        guard = [J.c.id == job_id, J.c.status.in_(sources_of(new)), *extra]
        if attempt is not None:
            guard.append(J.c.attempts == attempt)
        update_values = {"status": new.value, **values}
        if new in TERMINAL_STATUSES:
            update_values.update(finished_at=self._clock(), lease_until=None)
        moved = conn.execute(update(J).where(*guard).values(**update_values)).rowcount == 1
        if moved:
            # A preview belongs to one run of the job: gone once it stops running.
            conn.execute(delete(P).where(P.c.job_id == job_id))
        return moved

    def _finish(
        self,
        job_id: str,
        new: JobStatus,
        values: Mapping[str, Any],
        attempt: int | None,
        extra: Sequence[Any] = (),
    ) -> Job | None:
        with self._write() as conn:
            if not self._transition(conn, job_id, new, values, attempt=attempt, extra=extra):
                return None
            return self._get(conn, job_id)

    def complete(self, job_id: str, *, attempt: int | None = None) -> Job | None:
        """running → completed; None if the job was not running (under ``attempt``)."""
        return self._finish(job_id, JobStatus.completed, {"error": None}, attempt)

    def complete_many(self, claims: Sequence[ClaimedJob]) -> list[Job]:
        """``complete`` for every job of a finished call in one transaction; returns those completed."""
        with self._write() as conn:
            done = [
                c.id
                for c in claims
                if self._transition(conn, c.id, JobStatus.completed, {"error": None}, attempt=c.attempt)
            ]
            rows = list(conn.execute(select(J).where(J.c.id.in_(done))).mappings()) if done else []
            return self._to_jobs(conn, rows)

    def fail(self, job_id: str, error: JobError, *, attempt: int | None = None) -> Job | None:
        """running → failed with ``error``; None if the job was not running (under ``attempt``)."""
        return self._finish(job_id, JobStatus.failed, {"error": error.model_dump()}, attempt)

    def time_out(self, job_id: str, *, attempt: int | None = None, message: str | None = None) -> Job | None:
        """queued or running → timed_out; images already recorded stay. None if already final."""
        error = timeout_error(message) if message else timeout_error()
        return self._finish(job_id, JobStatus.timed_out, {"error": error.model_dump()}, attempt)

    def mark_cancelled(self, job_id: str, *, attempt: int | None = None) -> Job | None:
        """running → cancelled, once the dispatcher has stopped the worker item; keeps finished images."""
        error = JobError(code="cancelled", message="cancelled by request")
        return self._finish(job_id, JobStatus.cancelled, {"error": error.model_dump()}, attempt)

    def cancel(self, job_id: str) -> Job:
        """Cancel by request. queued → cancelled at once; running → ``cancel_requested`` which the
        dispatcher running it acts on within one step; a finished job is returned unchanged."""
        error = JobError(code="cancelled", message="cancelled by request")
        with self._write() as conn:
            self._transition(
                conn,
                job_id,
                JobStatus.cancelled,
                {"error": error.model_dump()},
                extra=[J.c.status == JobStatus.queued.value],
            )
            conn.execute(
                update(J).where(J.c.id == job_id, J.c.status == JobStatus.running.value).values(cancel_requested=True)
            )
            return self._get(conn, job_id)

    def release(self, job_id: str, *, attempt: int | None = None) -> Job | None:
        """Undo a claim whose job never started (worker busy, gateway shutting down): back to queued
        at once, the attempt not counted. A pending cancel request ends it as cancelled instead."""
        with self._write() as conn:
            guard = [J.c.id == job_id, J.c.status == JobStatus.running.value]
            if attempt is not None:
                guard.append(J.c.attempts == attempt)
            row = conn.execute(select(J.c.cancel_requested).where(*guard)).first()
            if row is None:
                return None
            if row.cancel_requested:
                error = JobError(code="cancelled", message="cancelled by request")
                self._transition(conn, job_id, JobStatus.cancelled, {"error": error.model_dump()}, attempt=attempt)
            else:
                self._transition(
                    conn,
                    job_id,
                    JobStatus.queued,
                    {
                        "attempts": J.c.attempts - 1,
                        "not_before": self._clock(),
                        "lease_until": None,
                        "step": 0,
                    },
                    attempt=attempt,
                )
                self._announce(conn)
            return self._get(conn, job_id)

    def retry(
        self,
        job_id: str,
        error: JobError,
        *,
        attempt: int | None = None,
        memory_saving: bool = False,
    ) -> Job | None:
        """A retryable failure of a running job: back to queued, not before now + backoff with jitter.

        Ends the job instead when that is all that is left: ``failed`` (with ``error``) after
        ``max_attempts`` starts, ``timed_out`` past its deadline, ``cancelled`` if a cancel is pending.
        ``memory_saving`` (after out_of_memory) makes every later attempt ask for memory-saving options.
        """
        with self._write() as conn:
            return self._retry(conn, job_id, error, attempt, memory_saving)

    def _retry(
        self, conn: Connection, job_id: str, error: JobError, attempt: int | None, memory_saving: bool
    ) -> Job | None:
        guard = [J.c.id == job_id, J.c.status == JobStatus.running.value]
        if attempt is not None:
            guard.append(J.c.attempts == attempt)
        row = conn.execute(
            select(J.c.attempts, J.c.deadline_at, J.c.cancel_requested, J.c.memory_saving).where(*guard)
        ).first()
        if row is None:
            return None
        now = self._clock()
        fence = int(row.attempts)
        if row.cancel_requested:
            self._transition(
                conn,
                job_id,
                JobStatus.cancelled,
                {"error": JobError(code="cancelled", message="cancelled by request").model_dump()},
                attempt=fence,
            )
        elif row.deadline_at <= now:
            self._transition(conn, job_id, JobStatus.timed_out, {"error": timeout_error().model_dump()}, attempt=fence)
        elif fence >= self.settings.max_attempts:
            final = JobError(code=error.code, message=f"{error.message} (gave up after {fence} attempts)")
            self._transition(conn, job_id, JobStatus.failed, {"error": final.model_dump()}, attempt=fence)
        else:
            delay = backoff_delay(fence, self.settings.backoff_base_s, self.settings.backoff_max_s)
            self._transition(
                conn,
                job_id,
                JobStatus.queued,
                {
                    "error": error.model_dump(),
                    "not_before": now + delay,
                    "lease_until": None,
                    "step": 0,
                    "memory_saving": bool(row.memory_saving) or memory_saving,
                },
                attempt=fence,
            )
        return self._get(conn, job_id)

    # -- housekeeping --------------------------------------------------------------------------------

    def requeue_expired_leases(self) -> list[str]:
        """Running jobs whose lease lapsed (their gateway died) go back to the queue (or end, see
        ``retry``). Run on start and periodically; returns the ids handled."""
        now = self._clock()
        lost = JobError(code="worker_unreachable", message="the gateway running this job stopped renewing its lease")
        handled = []
        with self._write() as conn:
            rows = conn.execute(
                select(J.c.id)
                .where(J.c.status == JobStatus.running.value, J.c.lease_until < now)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                if self._retry(conn, row.id, lost, None, False) is not None:
                    handled.append(row.id)
        return handled

    def expire_deadlines(self) -> list[str]:
        """Queued jobs past their deadline → timed_out; returns their ids. (Running ones are the
        dispatcher's: it must stop the worker first.)"""
        now = self._clock()
        with self._write() as conn:
            # Queued jobs have no previews: nothing to delete beside the status change.
            rows = conn.execute(
                update(J)
                .where(J.c.status == JobStatus.queued.value, J.c.deadline_at <= now)
                .values(
                    status=JobStatus.timed_out.value,
                    finished_at=now,
                    error=timeout_error("the deadline passed while the job was queued").model_dump(),
                )
                .returning(J.c.id)
            ).all()
        return [r.id for r in rows]

    def delete(self, job_id: str) -> list[str]:
        """Remove a finished job and its result rows; returns the result paths (relative to the output
        dir) so the caller deletes the files. ``JobNotFinished`` for queued or running jobs."""
        with self._write() as conn:
            row = conn.execute(select(J.c.status).where(J.c.id == job_id)).first()
            if row is None:
                raise JobNotFound(job_id)
            if JobStatus(row.status) not in TERMINAL_STATUSES:
                raise JobNotFinished(job_id, row.status)
            paths = [r.path for r in conn.execute(select(R.c.path).where(R.c.job_id == job_id)).all()]
            conn.execute(delete(R).where(R.c.job_id == job_id))
            conn.execute(delete(P).where(P.c.job_id == job_id))
            conn.execute(delete(J).where(J.c.id == job_id))
        return paths

    # --- Gallery reads (gateway/gallery): every stored image, newest job first -------------------------

    def gallery_page(
        self, *, offset: int, limit: int, model: str | None = None, text: str | None = None, owner: str | None = None
    ) -> tuple[int, list[GalleryRow]]:
        """Images (result rows) newest job first, index order within a job; ``model`` matches exactly,
        ``text`` is a case-insensitive substring of the prompt; ``owner`` limits to one key's jobs."""
        if offset < 0:
            raise ValueError("offset: must be ≥ 0")
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit: must be between 1 and {MAX_PAGE}")
        where: list[ColumnElement[bool]] = []
        if model is not None:
            where.append(J.c.model == model)
        if owner is not None:
            where.append(J.c.owner == owner)
        if text:
            # LIKE wildcards in the user's text are literal characters, not patterns.
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(J.c.request["prompt"].as_string().ilike(f"%{escaped}%", escape="\\"))
        joined = R.join(J, J.c.id == R.c.job_id)
        columns = (R.c.job_id, R.c.idx, R.c.path, R.c.seed, R.c.infotext, J.c.request, J.c.model, J.c.created_at)
        with self._read() as conn:
            total = conn.execute(select(func.count()).select_from(joined).where(*where)).scalar_one()
            query = select(*columns).select_from(joined).where(*where).order_by(J.c.seq.desc(), R.c.idx)
            rows = conn.execute(query.offset(offset).limit(limit)).all()
        return int(total), [
            GalleryRow(
                job_id=r.job_id,
                image_index=int(r.idx),
                path=r.path,
                seed=int(r.seed),
                infotext=r.infotext or "",
                request=dict(r.request),
                model=r.model,
                created_at=float(r.created_at),
            )
            for r in rows
        ]

    def gallery_models(self, *, owner: str | None = None) -> list[str]:
        """Names of the models that made at least one stored image (the gallery's model filter)."""
        where: list[ColumnElement[bool]] = [J.c.model.is_not(None)]
        if owner is not None:
            where.append(J.c.owner == owner)
        query = select(J.c.model).select_from(R.join(J, J.c.id == R.c.job_id)).where(*where).distinct()
        with self._read() as conn:
            return sorted(str(r.model) for r in conn.execute(query))

    def result_path(self, job_id: str, index: int) -> str | None:
        """Output-relative path of one image, None when the job has no such image."""
        with self._read() as conn:
            row = conn.execute(select(R.c.path).where(R.c.job_id == job_id, R.c.idx == index)).first()
        return None if row is None else str(row.path)
