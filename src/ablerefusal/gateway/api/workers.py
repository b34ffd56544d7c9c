"""Workers shared by the fleet: list, register and remove remote workers (admin keys only)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ablerefusal.gateway.auth import Principal, PrincipalDep
from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.errors import ApiException, invalid
from ablerefusal.gateway.fleet.models import SharedWorker, SharedWorkers, WorkerRegistration
from ablerefusal.gateway.fleet.registry import RegisteredWorker
from ablerefusal.gateway.services import GatewayService

router = APIRouter(tags=["workers"])


def _admin(principal: Principal) -> None:
    if not principal.admin:
        raise ApiException(403, "forbidden", "managing workers needs an admin key (auth.admin_keys)")


def _shared(service: GatewayService, worker: RegisteredWorker) -> SharedWorker:
    status = next((s for s in service.pool.statuses() if s.url == worker.url and not s.local), None)
    return SharedWorker.of(worker, status)


@router.get("/workers", summary="Workers registered in the store, their leases and this gateway's probes")
async def list_workers(service: ServiceDep, principal: PrincipalDep) -> SharedWorkers:
    _admin(principal)
    registered = await service.pool.registered()
    return SharedWorkers(gateway_id=service.pool.gateway_id, workers=[_shared(service, w) for w in registered])


@router.post(
    "/workers",
    status_code=201,
    summary="Register a remote worker for every gateway on the store (200 when it was registered already)",
    responses={200: {"model": SharedWorker, "description": "Already registered; unchanged."}},
)
async def register_worker(
    body: WorkerRegistration, service: ServiceDep, principal: PrincipalDep, response: Response
) -> SharedWorker:
    _admin(principal)
    try:
        worker, created = await service.pool.register(body.url, added_by=principal.owner)
    except ValueError as exc:
        raise invalid("url", str(exc)) from None
    if not created:
        response.status_code = 200
    return _shared(service, worker)


@router.delete(
    "/workers/{worker_id}",
    summary="Remove a registered worker; the gateway driving it stops at its next lease round",
    responses={404: {"description": "No registered worker has this id."}},
)
async def remove_worker(worker_id: str, service: ServiceDep, principal: PrincipalDep) -> SharedWorker:
    _admin(principal)
    gone = await service.pool.unregister(worker_id)
    if gone is None:
        raise ApiException(404, "not_found", f"no registered worker {worker_id!r}")
    return SharedWorker.of(gone, None)
