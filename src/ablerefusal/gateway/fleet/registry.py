"""Remote workers registered in the job store, and the leases that let one gateway at a time drive each.

A worker is registered by URL (``ar_workers``). Every gateway on the store runs ``lease_round`` every third
of ``workers.lease_s``: in one transaction it renews its presence (``ar_gateways``), gives back the workers
it was asked to release, renews the leases it holds, and takes free or lapsed ones up to its fair share
(the registered workers divided by the gateways alive, rounded up). A gateway sends calls only to workers
whose lease it holds, and stops before the lease could lapse (``LeaseState.valid_for``), so two gateways
never drive one worker; when a gateway dies its leases lapse after ``lease_s`` and the others take them.

Every statement is guarded (``holder = me`` to renew, ``holder IS NULL OR lease_until < now`` to take), and on
PostgreSQL the rows to take are locked with ``SKIP LOCKED``, so concurrent rounds never hand one worker to
two gateways. Times are the gateways' wall clocks, as for job leases: keep them in sync (NTP).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine, delete, func, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError

from ablerefusal.gateway.jobs import tables

W = tables.workers
G = tables.gateways


@dataclass(frozen=True)
class RegisteredWorker:
    """One row of ``ar_workers``."""

    id: str
    url: str
    source: str
    added_at: float
    added_by: str | None
    holder: str | None
    lease_until: float | None


@dataclass(frozen=True)
class LeaseState:
    """The outcome of one lease round."""

    held: frozenset[str]  # ids of the workers this gateway now holds
    share: int  # how many it may hold
    gateways: int  # gateways alive on the store, this one included
    workers: tuple[RegisteredWorker, ...]  # every registered worker, as read in the round


def normalize_url(url: str) -> str:
    """The canonical form a worker URL is stored in; ``ValueError`` naming the rule when it is not one."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must be a base URL without query, fragment or credentials (the token is workers.token)")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise ValueError(f"has an invalid port: {exc}") from None
    if len(text) > 500:
        raise ValueError("must be at most 500 characters")
    return text.rstrip("/")


def worker_id_for(url: str) -> str:
    """A short stable id for a registered worker (URLs make poor path parameters)."""
    return "w-" + hashlib.sha256(url.encode()).hexdigest()[:12]


def _row(r: object) -> RegisteredWorker:
    m = r._mapping  # type: ignore[attr-defined]
    return RegisteredWorker(
        id=m["id"],
        url=m["url"],
        source=m["source"],
        added_at=float(m["added_at"]),
        added_by=m["added_by"],
        holder=m["holder"],
        lease_until=None if m["lease_until"] is None else float(m["lease_until"]),
    )


class WorkerRegistry:
    """``ar_workers`` and ``ar_gateways`` on the job store's engine; synchronous, like the store."""

    def __init__(self, engine: Engine, *, lease_s: float, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.lease_s = lease_s
        self._clock = clock

    # -- registration ----------------------------------------------------------------------------------

    def register(self, url: str, *, source: str, added_by: str | None = None) -> tuple[RegisteredWorker, bool]:
        """Record a worker (``url`` normalised, ``ValueError`` if it is not a worker URL); returns it and
        whether it is new. Registering a known URL again changes nothing."""
        url = normalize_url(url)
        wid = worker_id_for(url)
        created = True
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(W.c.id).where(W.c.url == url)).first() is None:
                    conn.execute(
                        insert(W).values(id=wid, url=url, source=source, added_at=self._clock(), added_by=added_by)
                    )
                else:
                    created = False
        except IntegrityError:
            created = False  # another gateway registered it at the same moment
        found = self.get(wid)
        assert found is not None
        return found, created

    def get(self, worker_id: str) -> RegisteredWorker | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(W).where(W.c.id == worker_id)).first()
        return None if row is None else _row(row)

    def remove(self, worker_id: str) -> RegisteredWorker | None:
        """Forget a worker; its holder stops driving it at its next lease round. None if unknown."""
        with self.engine.begin() as conn:
            row = conn.execute(select(W).where(W.c.id == worker_id)).first()
            if row is None:
                return None
            conn.execute(delete(W).where(W.c.id == worker_id))
        return _row(row)

    def prune_config(self, keep: Collection[str]) -> list[str]:
        """Forget workers registered from a configuration that no longer lists them (``keep``: normalised
        URLs); for a store one gateway owns (SQLite), where its configuration is the whole fleet's."""
        with self.engine.begin() as conn:
            gone = [
                r.id for r in conn.execute(select(W.c.id).where(W.c.source == "config", W.c.url.not_in(list(keep))))
            ]
            if gone:
                conn.execute(delete(W).where(W.c.id.in_(gone)))
        return gone

    def workers(self) -> list[RegisteredWorker]:
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(select(W).order_by(W.c.added_at, W.c.id))]

    # -- leases ----------------------------------------------------------------------------------------

    def lease_round(
        self,
        holder: str,
        *,
        started_at: float,
        release: Collection[str] = (),
        eligible: Collection[str] | None = None,
    ) -> LeaseState:
        """Renew ``holder``'s presence and leases, give back ``release`` (ids), and take free or lapsed
        workers up to the fair share, only among ``eligible`` ids when given (those the gateway's probes
        find ready: taking a dead worker would only hide it from a gateway that could use a live one)."""
        now = self._clock()
        until = now + self.lease_s
        with self.engine.begin() as conn:
            seen = conn.execute(update(G).where(G.c.id == holder).values(seen_until=until)).rowcount
            if not seen:
                conn.execute(insert(G).values(id=holder, started_at=started_at, seen_until=until))
            conn.execute(delete(G).where(G.c.seen_until < now))
            gateways = max(1, int(conn.execute(select(func.count()).select_from(G)).scalar_one()))
            if release:
                conn.execute(
                    update(W)
                    .where(W.c.holder == holder, W.c.id.in_(list(release)))
                    .values(holder=None, lease_until=None)
                )
            held = {
                r.id
                for r in conn.execute(update(W).where(W.c.holder == holder).values(lease_until=until).returning(W.c.id))
            }
            total = int(conn.execute(select(func.count()).select_from(W)).scalar_one())
            share = math.ceil(total / gateways) if total else 0
            free = or_(W.c.holder.is_(None), W.c.lease_until < now)
            if len(held) < share:
                candidates = select(W.c.id).where(free, W.c.id.not_in(list(release)) if release else true())
                if eligible is not None:
                    candidates = candidates.where(W.c.id.in_(list(eligible)))
                rows = conn.execute(
                    candidates.order_by(W.c.holder.is_(None).desc(), W.c.id)
                    .limit(share - len(held))
                    .with_for_update(skip_locked=True)
                ).all()
                for r in rows:
                    taken = conn.execute(
                        update(W).where(W.c.id == r.id, free).values(holder=holder, lease_until=until)
                    ).rowcount
                    if taken:
                        held.add(r.id)
            workers = tuple(_row(r) for r in conn.execute(select(W).order_by(W.c.added_at, W.c.id)))
        return LeaseState(held=frozenset(held), share=share, gateways=gateways, workers=workers)

    def leave(self, holder: str) -> None:
        """A gateway stopping: give back its leases and its presence, so others take over at once."""
        with self.engine.begin() as conn:
            conn.execute(update(W).where(W.c.holder == holder).values(holder=None, lease_until=None))
            conn.execute(delete(G).where(G.c.id == holder))
