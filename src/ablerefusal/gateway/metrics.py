"""Prometheus metrics at ``/metrics``.

Gauges that mirror state (queue depth, workers up) are refreshed from the store and the pool at scrape
time, so they are right even when several gateways share one store. Counters and histograms are fed by
this gateway's job events as jobs finish.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ablerefusal.gateway.schemas import Job, JobStatus, QueueCounts, WorkerStatus

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Generation on a GPU takes seconds; on CPU with tiny models, milliseconds; queue waits can be minutes.
_TIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class GatewayMetrics:
    """One registry per app, so several apps in one process (tests) never share series."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queue_depth = Gauge(
            "ablerefusal_queue_depth", "Jobs in the store by status.", ["status"], registry=self.registry
        )
        self.jobs = Counter(
            "ablerefusal_jobs",
            "Jobs this gateway saw finish, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.submitted = Counter("ablerefusal_jobs_submitted", "Jobs accepted.", registry=self.registry)
        self.rejected = Counter(
            "ablerefusal_jobs_rejected", "Submissions refused, by reason.", ["reason"], registry=self.registry
        )
        self.queue_wait = Histogram(
            "ablerefusal_queue_wait_seconds",
            "Time from submission to the last start on a worker.",
            buckets=_TIME_BUCKETS,
            registry=self.registry,
        )
        self.generation_time = Histogram(
            "ablerefusal_generation_seconds",
            "Time from the last start on a worker to the terminal state.",
            buckets=_TIME_BUCKETS,
            registry=self.registry,
        )
        self.workers_up = Gauge(
            "ablerefusal_workers_up",
            "Workers answering ready (1) or not (0).",
            ["worker"],
            registry=self.registry,
        )
        self.worker_restarts = Gauge(
            "ablerefusal_worker_restarts", "Restarts of a local worker after a crash.", ["worker"],
            registry=self.registry,
        )  # fmt: skip
        for status in JobStatus:
            self.queue_depth.labels(status=status.value)

    def observe_finished(self, job: Job) -> None:
        self.jobs.labels(outcome=job.status.value).inc()
        if job.started_at is not None:
            self.queue_wait.observe(max((job.started_at - job.created_at).total_seconds(), 0.0))
            if job.finished_at is not None:
                self.generation_time.observe(max((job.finished_at - job.started_at).total_seconds(), 0.0))

    def refresh(self, counts: QueueCounts, workers: list[WorkerStatus]) -> None:
        for status, value in counts.model_dump().items():
            self.queue_depth.labels(status=status).set(value)
        for worker in workers:
            self.workers_up.labels(worker=worker.id).set(1 if worker.ready else 0)
            self.worker_restarts.labels(worker=worker.id).set(worker.restarts)

    def render(self) -> bytes:
        return generate_latest(self.registry)
