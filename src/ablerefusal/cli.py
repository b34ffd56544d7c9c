"""The one ``ablerefusal`` command. Each side registers its own commands, so the gateway's commands never
import torch: worker modules import it lazily, inside the commands that need it."""

from __future__ import annotations

import typer

from ablerefusal.gateway.cli import register as register_gateway
from ablerefusal.worker.cli import register as register_worker

app = typer.Typer(
    name="ablerefusal",
    help="AbleRefusal: self-hosted Stable Diffusion platform (gateway, workers, CLI client).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
register_worker(app)
register_gateway(app)


if __name__ == "__main__":
    app()
