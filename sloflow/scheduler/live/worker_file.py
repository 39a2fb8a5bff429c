"""The workers file `sloflow serve --workers FILE` reads: heterogeneous LLM workers in YAML or JSON.

    workers:
      - id: small-cpu
        backend: embedded          # llama.cpp inside the worker actor
        model: qwen2.5-coder-1.5b
        threads: 1
      - id: big-gpu
        backend: openai            # fronts a vLLM / SGLang / llama-server on the worker's node
        url: http://127.0.0.1:8000/v1
        model: Qwen/Qwen2.5-7B-Instruct
        slots: 32
        num_gpus: 1
        accelerator: A100          # needs the Ray resource accelerator_type:A100 on the node
      - id: emu
        backend: emulated          # scheduler-bound load only; its answers are filler
        model: fast
        emulated: {prefill_s_per_token: 0.0002, decode_s_per_token: 0.002}

Ray places each worker actor on a node that has its CPUs, GPUs and resources, so the same file
serves a laptop (local Ray) and a cluster (`SLOFLOW_RAY_ADDRESS`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sloflow.errors import ConfigError
from sloflow.scheduler.live.worker import WorkerSpec


class EmulatedSpeed(BaseModel):
    """The emulated backend's cost model: seconds per prompt token, per output token, per call."""

    model_config = ConfigDict(extra="forbid")

    prefill_s_per_token: float = Field(0.001, ge=0)
    decode_s_per_token: float = Field(0.01, ge=0)
    overhead_s: float = Field(0.0, ge=0)


class WorkerEntry(BaseModel):
    """One worker of the file; `WorkerSpec` is what the scheduler makes of it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    backend: Literal["embedded", "openai", "emulated"]
    model: str = Field(min_length=1, max_length=500)
    url: str | None = Field(None, description="the OpenAI-compatible base URL, for backend openai")
    api_key: str | None = None
    timeout_s: float = Field(120.0, gt=0)
    threads: int = Field(1, ge=1, le=256)
    lend_idle_cores: bool = Field(True, description="embedded: also compute on idle sibling workers' cores")
    slots: int = Field(1, ge=1, le=1024)
    context_tokens: int = Field(2048, ge=256, le=1_048_576)
    # An embedded worker's threads are its real CPU budget; 0 keeps Ray from refusing to start
    # more workers than it counts cores, as `sloflow serve` does without a file.
    num_cpus: float = Field(0.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    accelerator: str | None = Field(None, min_length=1, max_length=64)
    resources: dict[str, float] = Field(default_factory=dict, description="other Ray custom resources")
    emulated: EmulatedSpeed | None = None

    @model_validator(mode="after")
    def _backend_fields(self) -> WorkerEntry:
        if self.backend == "openai" and not self.url:
            raise ValueError("an openai worker needs url (the server's base URL, e.g. http://127.0.0.1:8080/v1)")
        if self.backend != "openai" and self.url:
            raise ValueError(f"url is only for openai workers, not {self.backend}")
        if self.backend != "emulated" and self.emulated:
            raise ValueError(f"emulated speeds are only for emulated workers, not {self.backend}")
        if any(v <= 0 for v in self.resources.values()):
            raise ValueError("every resource amount must be > 0")
        return self

    def spec(self, models_dir: str | None) -> WorkerSpec:
        speed = self.emulated or EmulatedSpeed()
        return WorkerSpec(
            self.backend,
            self.model,
            slots=self.slots,
            threads=self.threads,
            lend_idle_cores=self.lend_idle_cores,
            context_tokens=self.context_tokens,
            models_dir=models_dir,
            base_url=self.url,
            api_key=self.api_key,
            timeout_s=self.timeout_s,
            emulated=(speed.prefill_s_per_token, speed.decode_s_per_token, speed.overhead_s),
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
            accelerator=self.accelerator,
            resources=tuple(sorted(self.resources.items())),
        )


class WorkersFile(BaseModel):
    """The whole file: a non-empty list of workers with distinct ids."""

    model_config = ConfigDict(extra="forbid")

    workers: list[WorkerEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_ids(self) -> WorkersFile:
        ids = [w.id for w in self.workers]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"worker ids must be distinct; repeated: {twice}")
        return self


def load_worker_specs(path: Path, models_dir: Path | None = None) -> dict[str, WorkerSpec]:
    """Read a workers file (.yaml/.yml or .json); a bad file fails naming the field and what to fix."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the workers file {path}: {exc.strerror}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"the workers file {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    try:
        parsed = WorkersFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"the workers file {path} is invalid: {problems}") from None
    folder = str(models_dir) if models_dir else None
    return {w.id: w.spec(folder) for w in parsed.workers}
