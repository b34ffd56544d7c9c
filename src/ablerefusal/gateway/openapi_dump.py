"""Print the gateway's OpenAPI schema as deterministic JSON (sorted keys), without starting anything.

``python -m ablerefusal.gateway.openapi_dump > web/openapi.json``: the web UI's TypeScript types are
generated from this output, so it must not depend on the machine, the config file or running workers.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.settings import Settings


def openapi_schema() -> dict[str, Any]:
    # Built-in defaults only: a local config.yaml or environment must not change the published schema.
    return create_app(Settings.model_construct()).openapi()


def main() -> None:
    sys.stdout.write(json.dumps(openapi_schema(), sort_keys=True, indent=2) + "\n")


if __name__ == "__main__":
    main()
