"""config.example.yaml documents the defaults: it must load and match them, so the docs cannot drift."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ablerefusal.gateway.settings import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.yaml"
SECTIONS = ("server", "inference", "storage", "queue", "workers", "auth", "models")


def test_example_config_loads_and_states_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("ABLEREFUSAL_")]:
        monkeypatch.delenv(key)
    loaded = load_settings(EXAMPLE)
    defaults = Settings()
    for section in SECTIONS:
        assert getattr(loaded, section).model_dump() == getattr(defaults, section).model_dump(), section
