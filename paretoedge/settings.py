"""Settings read from the environment (prefix ``PARETOEDGE_``).

Kept in one place so the CLI, the HTTP API and the workers of a cluster agree on where
caches, extra device profiles and the default database live.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".cache" / "paretoedge"


class Settings(BaseSettings):
    """Process-wide settings.

    Attributes:
        home: Root of every cache (fine-tuned teachers, compiled-cost cache).
        devices_dir: Extra directory of device profile YAML files; a file there with the
            name of a bundled device overrides it.
        storage: Default database URL of studies.
        api_token: Bearer token required by the HTTP API's write endpoints.
        data_dir: The only directory whose files a study launched over the HTTP API may
            name as its task or model (``PARETOEDGE_DATA_DIR``); without it, launched
            studies may use bundled tasks and models only. The CLI is not restricted: it
            runs as its user, with that user's files.
    """

    model_config = SettingsConfigDict(env_prefix="PARETOEDGE_", extra="ignore")

    home: Path = Field(default_factory=_default_home)
    devices_dir: Path | None = None
    storage: str = "sqlite:///paretoedge.db"
    api_token: str | None = None
    data_dir: Path | None = None

    @property
    def teacher_cache(self) -> Path:
        return self.home / "teachers"

    @property
    def cost_cache(self) -> Path:
        return self.home / "costs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once; tests call ``get_settings.cache_clear()``)."""
    return Settings()
