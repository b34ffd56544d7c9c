"""Configuration precedence: config.yaml < environment < CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablerefusal.gateway.settings import load_settings


def test_yaml_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "server: {host: 127.0.0.1, port: 9000, enable_cors: true}\n"
        "queue: {max_queue_length: 7, max_prompt_length: 50}\n"
        "storage: {output_dir: /from/yaml}\n"
    )
    monkeypatch.setenv("ABLEREFUSAL_SERVER__PORT", "9100")
    monkeypatch.setenv("ABLEREFUSAL_QUEUE__MAX_QUEUE_LENGTH", "8")
    settings = load_settings(config, {"server": {"port": 9200}})
    assert settings.server.port == 9200  # flag beats env beats yaml
    assert settings.queue.max_queue_length == 8  # env beats yaml
    assert settings.queue.max_prompt_length == 50  # yaml beats default
    assert settings.server.enable_cors is True
    assert settings.storage.output_dir == Path("/from/yaml")


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server: {port: 0}\n")
    with pytest.raises(ValueError, match="port"):
        load_settings(config)
