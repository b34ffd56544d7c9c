"""Session-wide fixtures shared by every suite: the tiny random-weight models.

Made once per test session, in a child process, so that test processes which must stay free of torch (the
gateway's) never import it. Their images are noise; they exist so every layer runs for real.

Fixtures (names are stable; other suites use them):
- ``tiny_models_dir``: a models directory holding all four tiny models below.
- ``tiny_sd15``: path of the SD 1.5 diffusers folder (model id ``tiny-sd15``).
- ``tiny_sdxl``: path of the SDXL diffusers folder (model id ``tiny-sdxl``).
- ``tiny_sd15_single_file``: SD 1.5 single-file checkpoint (id ``tiny-sd15-single``, sidecar ``.config/``).
- ``tiny_sdxl_single_file``: SDXL single-file checkpoint (id ``tiny-sdxl-single``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_MAKE_ALL = """
import sys
from pathlib import Path
from ablerefusal.testing.tiny import make_tiny
dest = Path(sys.argv[1])
for family in ("sd15", "sdxl"):
    for fmt in ("diffusers", "single-file"):
        make_tiny(dest, family, fmt)
"""


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("tiny-models")
    subprocess.run([sys.executable, "-c", _MAKE_ALL, str(models)], check=True, timeout=600, capture_output=True)
    return models


@pytest.fixture(scope="session")
def tiny_sd15(tiny_models_dir: Path) -> Path:
    return tiny_models_dir / "tiny-sd15"


@pytest.fixture(scope="session")
def tiny_sdxl(tiny_models_dir: Path) -> Path:
    return tiny_models_dir / "tiny-sdxl"


@pytest.fixture(scope="session")
def tiny_sd15_single_file(tiny_models_dir: Path) -> Path:
    return tiny_models_dir / "tiny-sd15-single.safetensors"


@pytest.fixture(scope="session")
def tiny_sdxl_single_file(tiny_models_dir: Path) -> Path:
    return tiny_models_dir / "tiny-sdxl-single.safetensors"
