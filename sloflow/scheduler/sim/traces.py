"""Workload traces: CHESS-style workflow requests (stages of calls) and arrival processes."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sloflow.errors import ConfigError

# The shared data folder beside the project checkout (see shared/data/README.md).
TRACES_DIR = Path(__file__).resolve().parents[4] / "shared" / "data" / "traces"

# Calls of these steps that follow each other in a request run in parallel as one stage (HEXGEN).
PARALLEL_STEPS = ("generate_candidate", "evaluate")

# Tokens of the fixed prompt template of each CHESS step (from the HEXGEN authors' simulator): the
# part of a prompt that a worker which served the same step before still holds in its prompt cache.
TEMPLATE_TOKENS = {
    "Information Retriever": 213,
    "extract_keywords": 630,
    "generate_candidate_llama-agent": 5292,
    "revise": 3059,
    "unit_tester": 213,
    "generate_unit_test": 436,
    "evaluate": 261,
}


@dataclass(frozen=True, slots=True)
class CallShape:
    """One LLM call of a traced request: its step name and token counts."""

    step: str
    prompt_tokens: int
    output_tokens: int
    prefix_tokens: int = 0  # leading prompt tokens shared by every call of this step (its template)


@dataclass(frozen=True, slots=True)
class RequestShape:
    """A traced request: stages in order, each a group of calls that run in parallel."""

    stages: tuple[tuple[CallShape, ...], ...]

    @property
    def calls(self) -> int:
        return sum(len(s) for s in self.stages)


def _parallel(step: str) -> bool:
    return step.startswith(PARALLEL_STEPS)


def load_workflow_trace(path: Path) -> list[RequestShape]:
    """Read a CHESS trace (a list of {"Text2SQLRequest": [{step, input_length, output_length}, ...]})."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read workflow trace {path}: {exc}") from None
    requests: list[RequestShape] = []
    for item in doc:
        calls = item["Text2SQLRequest"] if isinstance(item, dict) else item
        stages: list[list[CallShape]] = []
        for c in calls:
            prompt = int(c["input_length"])
            shape = CallShape(c["step"], prompt, int(c["output_length"]), min(TEMPLATE_TOKENS.get(c["step"], 0), prompt))
            if stages and _parallel(shape.step) and stages[-1][-1].step == shape.step:
                stages[-1].append(shape)
            else:
                stages.append([shape])
        requests.append(RequestShape(tuple(tuple(s) for s in stages)))
    if not requests:
        raise ConfigError(f"workflow trace {path} holds no requests")
    return requests


def unit_poisson(n: int, seed: int) -> list[float]:
    """Arrival times of a rate-1 Poisson process; divide by a rate to rescale (common random numbers)."""
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(1.0)
        out.append(t)
    return out


def load_arrival_trace(path: Path) -> list[float]:
    """Arrival offsets (seconds from the first) of an Azure LLM inference trace CSV or a Mooncake JSON-lines trace."""
    path = Path(path)
    try:
        if path.suffix == ".jsonl":  # Mooncake: one request a line, "timestamp" in milliseconds from the start
            offsets = [json.loads(line)["timestamp"] / 1000 for line in path.read_text().splitlines() if line.strip()]
        else:
            with path.open(newline="") as f:
                stamps = [datetime.fromisoformat(row["TIMESTAMP"][:26]) for row in csv.DictReader(f)]
            offsets = [(s - stamps[0]).total_seconds() for s in stamps]
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"cannot read arrival trace {path}: {exc}") from None
    if not offsets:
        raise ConfigError(f"arrival trace {path} is empty")
    return sorted(offsets)


def rescaled(offsets: Sequence[float], n: int, rate: float, start: int = 0) -> list[float]:
    """`n` consecutive arrivals of a trace from index `start`, stretched to average `rate` per second."""
    window = list(offsets[start : start + n + 1])
    if len(window) < n + 1:
        raise ConfigError(f"the arrival trace holds {len(offsets)} arrivals; {start + n + 1} are needed")
    span = window[-1] - window[0]
    scale = n / rate / span if span > 0 else 0.0
    return [(t - window[0]) * scale for t in window[:n]]


def sample_requests(trace: Sequence[RequestShape], n: int, seed: int) -> list[RequestShape]:
    """`n` requests drawn from the trace with replacement."""
    rng = random.Random(seed)
    return [rng.choice(trace) for _ in range(n)]
