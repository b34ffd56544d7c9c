"""Shared workers in the job store (gateway/fleet/registry.py), on SQLite and on the local PostgreSQL: fair
shares between gateways, hand-back, take-over after a dead gateway's lease lapses, and no worker ever held by
two gateways however their rounds interleave."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ablerefusal.gateway.fleet.registry import WorkerRegistry, normalize_url, worker_id_for
from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.jobs.engine import normalize_url as normalize_db_url

PG_URL = os.environ.get("ABLEREFUSAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
LEASE_S = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        store = JobStore(f"sqlite:///{tmp_path}/jobs.db")
        yield store
        store.close()
        return
    schema = f"t_workers_{uuid.uuid4().hex[:12]}"
    store = JobStore(PG_URL, schema=schema)
    try:
        yield store
    finally:
        store.close()
        engine = create_engine(normalize_db_url(PG_URL))
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(store: JobStore, clock: Clock) -> WorkerRegistry:
    return WorkerRegistry(store.engine, lease_s=LEASE_S, clock=clock)


def register(registry: WorkerRegistry, n: int) -> list[str]:
    return [registry.register(f"http://10.0.0.{i}:8001/", source="config")[0].id for i in range(1, n + 1)]


def test_registering_normalises_and_is_idempotent(registry: WorkerRegistry) -> None:
    first, created = registry.register("http://10.0.0.1:8001/", source="api", added_by="k1")
    again, created_again = registry.register("http://10.0.0.1:8001", source="config")
    assert created and not created_again
    assert first == again and first.url == "http://10.0.0.1:8001" and first.source == "api"
    assert first.id == worker_id_for("http://10.0.0.1:8001")
    assert [w.id for w in registry.workers()] == [first.id]
    assert registry.remove(first.id) == first and registry.workers() == []
    assert registry.remove(first.id) is None


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("10.0.0.1:8001", "http://"),
        ("ftp://10.0.0.1", "http://"),
        ("http://", "host"),
        ("http://w:8001/?x=1", "query"),
        ("http://user:pw@w:8001", "credentials"),
        ("http://w:99999", "port"),
    ],
)
def test_bad_urls_are_refused_naming_the_rule(url: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        normalize_url(url)


def test_two_gateways_split_the_workers_and_the_first_hands_back_its_surplus(
    registry: WorkerRegistry, clock: Clock
) -> None:
    ids = register(registry, 3)
    alone = registry.lease_round("gw-a", started_at=clock.now)
    assert alone.held == frozenset(ids) and alone.share == 3 and alone.gateways == 1

    clock.now += 1
    b = registry.lease_round("gw-b", started_at=clock.now)
    assert b.gateways == 2 and b.share == 2 and b.held == frozenset()  # all three are A's, leases live

    # A is over its share: it hands one back (the pool picks an unused one), and B takes it.
    a = registry.lease_round("gw-a", started_at=clock.now, release={ids[0]})
    assert a.held == frozenset(ids[1:]) and a.share == 2
    b = registry.lease_round("gw-b", started_at=clock.now)
    assert b.held == frozenset({ids[0]})
    holders = {w.id: w.holder for w in registry.workers()}
    assert holders == {ids[0]: "gw-b", ids[1]: "gw-a", ids[2]: "gw-a"}


def test_a_dead_gateways_workers_pass_to_another_once_its_lease_lapses(registry: WorkerRegistry, clock: Clock) -> None:
    ids = register(registry, 3)
    registry.lease_round("gw-a", started_at=clock.now, release=())
    registry.lease_round("gw-b", started_at=clock.now)
    registry.lease_round("gw-a", started_at=clock.now, release={ids[2]})
    assert registry.lease_round("gw-b", started_at=clock.now).held == frozenset({ids[2]})

    # A dies: no more rounds from it. Within its lease, B may not take A's workers.
    clock.now += LEASE_S - 1
    assert registry.lease_round("gw-b", started_at=clock.now).held == frozenset({ids[2]})
    clock.now += 2  # A's lease (and its presence) lapsed
    after = registry.lease_round("gw-b", started_at=clock.now)
    assert after.gateways == 1 and after.share == 3 and after.held == frozenset(ids)


def test_only_eligible_workers_are_taken(registry: WorkerRegistry, clock: Clock) -> None:
    ids = register(registry, 2)
    state = registry.lease_round("gw-a", started_at=clock.now, eligible={ids[1]})
    assert state.held == frozenset({ids[1]})
    assert {w.id: w.holder for w in registry.workers()} == {ids[0]: None, ids[1]: "gw-a"}


def test_leaving_hands_everything_back_at_once(registry: WorkerRegistry, clock: Clock) -> None:
    ids = register(registry, 2)
    registry.lease_round("gw-a", started_at=clock.now)
    registry.leave("gw-a")
    state = registry.lease_round("gw-b", started_at=clock.now)
    assert state.gateways == 1 and state.held == frozenset(ids)


def test_pruning_forgets_configured_workers_no_longer_listed(registry: WorkerRegistry) -> None:
    kept, gone = register(registry, 2)
    api, _ = registry.register("http://10.0.0.9:8001", source="api")
    assert registry.prune_config(["http://10.0.0.1:8001"]) == [gone]
    assert {w.id for w in registry.workers()} == {kept, api.id}


def test_concurrent_rounds_never_give_one_worker_to_two_gateways(store: JobStore, clock: Clock) -> None:
    """Eight gateways race lease rounds from threads. The clock stands still, so no lease lapses and no
    worker may change hands: any worker in two gateways' answers is a double grant."""
    if store.engine.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers by itself; the race matters on PostgreSQL")
    registry = WorkerRegistry(store.engine, lease_s=LEASE_S, clock=clock)
    ids = set(register(registry, 5))
    held: dict[str, frozenset[str]] = {}
    lock = threading.Lock()
    clashes: list[tuple[str, str, frozenset[str]]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def run(name: str) -> None:
        try:
            start.wait()
            for _ in range(6):
                state = registry.lease_round(name, started_at=clock.now)
                with lock:
                    held[name] = state.held
                    clashes.extend(
                        (name, other, both)
                        for other, theirs in held.items()
                        if other != name and (both := theirs & state.held)
                    )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"gw-{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert clashes == []
    # Every worker went to somebody, and the store agrees with what each gateway was told.
    assert set().union(*held.values()) == ids
    rows = {w.id: w.holder for w in registry.workers()}
    assert rows == {w: name for name, mine in held.items() for w in mine}
