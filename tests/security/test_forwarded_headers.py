"""Finding 11: forwarded headers (X-Forwarded-Proto/-For) were believed from any local process (uvicorn's
default trusts 127.0.0.1), so any local client could make the gateway build https links or log another
address. They are believed only from ``server.trusted_proxies``. The live OpenAI test
(tests/compat/test_compat_openai_live.py) shows a spoofed header no longer changes the ``url`` answer."""

from __future__ import annotations

import uvicorn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ablerefusal.gateway.security.connections import HeaderTimeoutProtocol, uvicorn_options


async def _app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("never called")


def _loaded(**options: object) -> uvicorn.Config:
    config = uvicorn.Config(_app, log_config=None, **options)  # type: ignore[arg-type]
    config.load()
    return config


def _middlewares(app: object) -> list[object]:
    found = []
    while app is not None:
        found.append(app)
        app = getattr(app, "app", None)
    return found


def test_no_trusted_proxy_means_forwarded_headers_are_ignored() -> None:
    config = _loaded(**uvicorn_options(7.0, []))
    assert not any(isinstance(m, ProxyHeadersMiddleware) for m in _middlewares(config.loaded_app))
    assert issubclass(config.http_protocol_class, HeaderTimeoutProtocol)
    assert config.http_protocol_class.header_timeout_s == 7.0  # type: ignore[attr-defined]


def test_configured_proxies_are_the_only_ones_believed() -> None:
    config = _loaded(**uvicorn_options(10.0, ["10.0.0.2", "192.168.0.0/16"]))
    (proxy,) = [m for m in _middlewares(config.loaded_app) if isinstance(m, ProxyHeadersMiddleware)]
    assert "10.0.0.2" in proxy.trusted_hosts and "192.168.4.4" in proxy.trusted_hosts
    assert "127.0.0.1" not in proxy.trusted_hosts
