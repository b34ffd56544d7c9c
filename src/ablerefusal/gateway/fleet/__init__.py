"""What makes several gateways one fleet on one PostgreSQL store: shared workers driven through leases
(``registry``), live job events across gateways through LISTEN/NOTIFY (``bus``), and the gateway's id."""

from ablerefusal.gateway.fleet.identity import new_gateway_id

__all__ = ["new_gateway_id"]
