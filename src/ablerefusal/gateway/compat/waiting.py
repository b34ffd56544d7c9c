"""Waiting on jobs for a synchronous compat request, and letting go of them when its client leaves.

A1111 and OpenAI clients hold the HTTP request open until their images are ready. When such a client
disconnects nobody can read the answer, so its unfinished jobs are cancelled instead of keeping a GPU busy.
A gateway shutdown is different: the handler is cancelled but the jobs stay queued in the store and finish
after the restart (DESIGN §1: a gateway restart loses nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import Request

from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.schemas import TERMINAL_STATUSES, Job
from ablerefusal.gateway.services import GatewayService

# How often a waiting handler checks whether its client is still connected.
DISCONNECT_POLL_S = 0.5


class ClientGone(Exception):
    """The client disconnected before its jobs finished; they were cancelled."""


async def cancel_unfinished(service: GatewayService, job_ids: list[str], only_first: bool = False) -> None:
    """Cancel the jobs not yet terminal (just the first such one with ``only_first``)."""
    for job_id in job_ids:
        job = await service.get(job_id)
        if job.status in TERMINAL_STATUSES:
            continue
        # It may finish between the read and the cancel; terminal states never change, so that is fine.
        with contextlib.suppress(ApiException):
            await service.cancel(job_id)
        if only_first:
            return


async def _until_disconnected(request: Request) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(DISCONNECT_POLL_S)


async def wait_all(request: Request, service: GatewayService, job_ids: list[str]) -> list[Job]:
    """Every job once terminal, in order. Raises ClientGone (after cancelling) if the client leaves first.

    Waiting on all at once subscribes to every job's events, which is also what makes the dispatcher ask
    the worker for the latent previews that A1111's /progress shows.
    """
    jobs: asyncio.Future[list[Job]] = asyncio.ensure_future(
        asyncio.gather(*(service.wait(job_id, None) for job_id in job_ids))
    )
    watcher: asyncio.Future[None] = asyncio.ensure_future(_until_disconnected(request))
    try:
        either: list[asyncio.Future[Any]] = [jobs, watcher]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not jobs.done():
            jobs.cancel()
    if jobs.done() and not jobs.cancelled():
        return list(jobs.result())
    await cancel_unfinished(service, job_ids)
    raise ClientGone
