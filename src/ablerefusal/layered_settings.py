"""Source order shared by the gateway's and the worker's settings: YAML file < environment < CLI flags.

The YAML file's values arrive as init kwargs, so the environment must rank above init kwargs. CLI flags are
merged afterwards into the already resolved values, and that merge must be validated with init kwargs as
the only source, or the environment would be applied again over the flags.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


class EnvOverFileSettings(BaseSettings):
    """Environment beats init kwargs (the YAML file); dotenv and secrets files are not read."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings


class InitOnlySettings(BaseSettings):
    """Mix in first (``class _Flags(InitOnlySettings, MySettings)``) to validate a final merge as given."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)
