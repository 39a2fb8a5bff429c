"""Settings: one pydantic-settings object, read from SLOFLOW_* variables and `.env`."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sloflow.errors import ConfigError


def _default_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sloflow"


class Settings(BaseSettings):
    """Every knob of sloflow; environment variables are SLOFLOW_<FIELD> (e.g. SLOFLOW_PORT)."""

    model_config = SettingsConfigDict(env_prefix="SLOFLOW_", env_file=".env", extra="ignore")

    # Server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Where sloflow keeps assembled models, checkpoints, indexes and run records.
    home: Path = Field(default_factory=_default_home)

    # LLM backend used when nothing else is configured.
    backend: Literal["embedded", "openai"] = "embedded"
    model: str = "qwen2.5-coder-1.5b"
    threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # LLM worker actors `sloflow serve` starts; the threads are split among them.
    workers: int = Field(2, ge=1, le=64)
    context_tokens: int = Field(4096, ge=256)

    # OpenAI-compatible endpoint (vLLM, SGLang, llama-server, Ollama, hosted APIs).
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_api_key: str | None = None
    openai_model: str = "default"
    openai_timeout_s: float = Field(120.0, gt=0)
    openai_retries: int = Field(3, ge=0)

    # Run checkpoints: a SQLite path, postgresql://..., "memory" or "none"; default home/checkpoints.sqlite.
    checkpoints: str | None = None

    # Ray: empty means a local, loopback-only Ray started by sloflow.
    ray_address: str | None = None
    ray_dashboard: bool = True

    @field_validator("host")
    @classmethod
    def _host_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; invalid values fail here with the setting's name."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"SLOFLOW_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
