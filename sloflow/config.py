"""Settings: one pydantic-settings object, read from SLOFLOW_* variables and `.env`."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sloflow.errors import ConfigError
from sloflow.gating import UNGATED_GROUPS, GatePolicy


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _default_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sloflow"


class Settings(BaseSettings):
    """Every knob of sloflow; environment variables are SLOFLOW_<FIELD> (e.g. SLOFLOW_PORT)."""

    model_config = SettingsConfigDict(env_prefix="SLOFLOW_", env_file=".env", extra="ignore")

    # Server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # JSON lines with run, stage and call ids for log pipelines; "text" for people at a terminal.
    log_format: Literal["text", "json"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Where sloflow keeps assembled models, checkpoints, indexes and run records.
    home: Path = Field(default_factory=_default_home)

    # LLM backend used when nothing else is configured.
    backend: Literal["embedded", "openai"] = "embedded"
    model: str = "qwen2.5-coder-1.5b"
    threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # LLM worker actors `sloflow serve` starts; the threads are split among them.
    workers: int = Field(2, ge=1, le=64)
    # A worker's batch also runs on idle sibling workers' cores (`sloflow.llm.spare_cores`).
    lend_idle_cores: bool = True
    context_tokens: int = Field(4096, ge=256)

    # OpenAI-compatible endpoint (vLLM, SGLang, llama-server, Ollama, hosted APIs).
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_api_key: str | None = None
    openai_model: str = "default"
    openai_timeout_s: float = Field(120.0, gt=0)
    openai_retries: int = Field(3, ge=0)

    # Run checkpoints: a SQLite path, postgresql://..., "memory" or "none"; default home/checkpoints.sqlite.
    checkpoints: str | None = None

    # API keys: every /v1 route but health and ready needs `Authorization: Bearer KEY`. Only a
    # personal server bound to loopback may turn this off (SLOFLOW_AUTH=false).
    auth: bool = True
    # Limits on what one request may send.
    max_body_bytes: int = Field(16 << 20, ge=1024)
    max_json_depth: int = Field(32, ge=4, le=200)
    # Per-tenant quotas until an admin sets others (`PUT /v1/admin/tenants/{tenant}/quotas`).
    quota_concurrent_runs: int = Field(8, ge=1)
    quota_requests_per_min: int = Field(600, ge=1)
    quota_tokens_per_min: int = Field(200_000, ge=1)

    # Reasoning gates per route group (the first path segment after /v1: chat, workflows, runs...),
    # e.g. SLOFLOW_GATES='{"chat": {"mode": "adaptive", "rate_per_s": 1}}'; groups not named are off.
    gates: dict[str, GatePolicy] = Field(default_factory=dict)
    # The bank is refilled (gates.fill, on idle capacity) when fewer gates than the low mark are left.
    gate_bank_low: int = Field(20, ge=0)
    gate_bank_high: int = Field(40, ge=1)

    # Ray: empty means a local, loopback-only Ray started by sloflow.
    ray_address: str | None = None
    ray_dashboard: bool = True

    @model_validator(mode="after")
    def _auth_off_only_on_loopback(self) -> Settings:
        if not self.auth and self.host not in LOOPBACK_HOSTS:
            raise ValueError(f"auth can be turned off only for a server bound to loopback, not {self.host}")
        return self

    @model_validator(mode="after")
    def _gates_solvable(self) -> Settings:
        ungated = sorted(set(self.gates) & UNGATED_GROUPS)
        if ungated:
            raise ValueError(f"route groups {ungated} cannot be gated (a gate is solved, and health read, without one)")
        if self.gate_bank_low > self.gate_bank_high:
            raise ValueError(f"gate_bank_low ({self.gate_bank_low}) must not exceed gate_bank_high ({self.gate_bank_high})")
        return self

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
