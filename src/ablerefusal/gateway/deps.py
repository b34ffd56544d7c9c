"""Typed dependency aliases for routers (full-stack-fastapi-template style)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ablerefusal.gateway.services import GatewayService
from ablerefusal.gateway.settings import Settings


def get_service(request: Request) -> GatewayService:
    service: GatewayService = request.app.state.service
    return service


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ServiceDep = Annotated[GatewayService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
