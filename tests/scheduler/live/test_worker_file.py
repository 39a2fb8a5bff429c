"""The workers file of `sloflow serve --workers`: parsed strictly, placed by Ray resources."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from sloflow.errors import ConfigError
from sloflow.scheduler.live.worker import LLMWorker, WorkerSpec
from sloflow.scheduler.live.worker_file import load_worker_specs

FLEET = """
workers:
  - id: small
    backend: embedded
    model: smollm2-135m
    threads: 2
    context_tokens: 4096
  - id: big
    backend: openai
    url: http://127.0.0.1:8080/v1
    model: Qwen/Qwen2.5-7B-Instruct
    slots: 32
    num_gpus: 1
    accelerator: A100
    timeout_s: 30
  - id: emu
    backend: emulated
    model: fast
    resources: {zone-b: 1}
    emulated: {prefill_s_per_token: 0.0002, decode_s_per_token: 0.002}
"""


def test_yaml_file_gives_one_spec_per_worker(tmp_path: Path) -> None:
    path = tmp_path / "workers.yaml"
    path.write_text(FLEET)
    specs = load_worker_specs(path, tmp_path / "models")
    assert list(specs) == ["small", "big", "emu"]
    assert specs["small"] == WorkerSpec(
        "embedded", "smollm2-135m", threads=2, context_tokens=4096, models_dir=str(tmp_path / "models"), num_cpus=0, lend_idle_cores=True
    )
    big = specs["big"]
    assert (big.kind, big.base_url, big.slots, big.timeout_s) == ("openai", "http://127.0.0.1:8080/v1", 32, 30)
    assert big.actor_options("sloflow-worker-big") == {
        "name": "sloflow-worker-big", "num_cpus": 0, "num_gpus": 1, "max_restarts": 0,
        "resources": {"accelerator_type:A100": 0.001},
    }
    assert specs["emu"].emulated == (0.0002, 0.002, 0.0)
    assert specs["emu"].actor_options("x")["resources"] == {"zone-b": 1}


def test_json_file_reads_the_same(tmp_path: Path) -> None:
    import yaml

    yaml_path, json_path = tmp_path / "w.yaml", tmp_path / "w.json"
    yaml_path.write_text(FLEET)
    json_path.write_text(json.dumps(yaml.safe_load(FLEET)))
    assert load_worker_specs(json_path) == load_worker_specs(yaml_path)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("workers: []", "workers: List should have at least 1 item"),
        ("workers:\n  - {id: a, backend: openai, model: m}", "needs url"),
        ("workers:\n  - {id: a, backend: gpu, model: m}", "workers.0.backend"),
        ("workers:\n  - {id: a, backend: emulated, model: m, thread: 2}", "workers.0.thread: Extra inputs"),
        ("workers:\n  - {id: a, backend: emulated, model: m}\n  - {id: a, backend: emulated, model: n}", "repeated: ['a']"),
        ("workers:\n  - {id: a, backend: emulated, model: m, resources: {x: 0}}", "must be > 0"),
        ("workers: [", "not valid YAML"),
        ("- just a list", "file: Input should be a valid dictionary"),
    ],
)
def test_a_bad_file_fails_naming_what_to_fix(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "workers.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_worker_specs(path)
    assert says in err.value.message and str(path) in err.value.message


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the workers file"):
        load_worker_specs(tmp_path / "nope.yaml")


def test_worker_repr_names_model_slots_and_queue_depth() -> None:
    spec = WorkerSpec("openai", "llama-70b", base_url="http://127.0.0.1:9/v1", slots=16, accelerator="H100")
    assert repr(LLMWorker("gpu-0", spec)) == "LLMWorker(gpu-0, openai llama-70b, H100, slots=16, queued=0)"


@pytest.mark.usefixtures("ray_session")
async def test_workers_from_a_file_serve_and_an_unplaceable_one_is_refused(tmp_path: Path) -> None:
    import ray

    from sloflow.llm.client import CallContext
    from sloflow.llm.types import GenerateRequest
    from sloflow.scheduler.live.client import SchedulerClient
    from sloflow.scheduler.live.dispatcher import start_scheduler

    path = tmp_path / "workers.yaml"
    path.write_text(
        "workers:\n"
        "  - {id: file-emu-a, backend: emulated, model: filed, slots: 2, emulated: {decode_s_per_token: 0.001}}\n"
        "  - {id: file-emu-b, backend: emulated, model: filed, emulated: {decode_s_per_token: 0.001}}\n"
    )
    specs = load_worker_specs(path)
    dispatcher = await asyncio.to_thread(start_scheduler, specs, name="sloflow-dispatcher-file")
    try:
        out = await SchedulerClient(dispatcher).generate(GenerateRequest(prompt="hi", max_tokens=3), CallContext())
        assert (out.model, out.completion_tokens) == ("emulated:filed", 3)
        names = {w["id"]: w["model"] for w in await dispatcher.workers.remote()}
        assert names == {"file-emu-a": "emulated:filed", "file-emu-b": "emulated:filed"}
    finally:
        for worker_id in specs:
            await dispatcher.remove.remote(worker_id)
        ray.kill(dispatcher)

    path.write_text("workers:\n  - {id: needs-b200, backend: emulated, model: m, accelerator: B200}\n")
    with pytest.raises(ConfigError, match=r"no Ray node can hold worker 'needs-b200'.*accelerator_type:B200"):
        start_scheduler(load_worker_specs(path), name="sloflow-dispatcher-file2")


@pytest.mark.usefixtures("ray_session")  # the worker reports its metrics through Ray
async def test_a_background_call_on_a_shared_cache_takes_its_slots_prefix_claim() -> None:
    import time

    from sloflow.llm.types import GenerateRequest
    from sloflow.scheduler.policies.call import Call
    from sloflow.scheduler.policies.profile import WorkerProfile

    fast = WorkerProfile("fast", 0.0001, 0.0001, slots=1, context_tokens=4096)
    worker = LLMWorker("w", WorkerSpec("emulated", "e", slots=1, profile=fast))
    await worker.ready()
    request = GenerateRequest(prompt="hello there", max_tokens=2)
    now = time.time()
    held = (await worker.run(Call("a", 4, 2, now, deadline=now + 60, prefix_key="warm"), request)).held_prefixes
    assert held == ("warm",)
    # The emulated backend has one cache for every call: a background call overwrites it, and says so.
    out = await worker.run(Call("b", 4, 2, now, prefix_key="other"), request)
    assert out.completion is not None and not out.completion.apart and out.held_prefixes == ("other",)


def test_a_workers_needs_name_every_nonzero_resource_and_decide_which_nodes_fit() -> None:
    spec = WorkerSpec("openai", "m", base_url="http://127.0.0.1:9/v1", num_cpus=2, accelerator="H100", resources=(("ssd", 1.0),))
    assert spec.needs() == {"CPU": 2, "accelerator_type:H100": 0.001, "ssd": 1.0}  # no GPU: it needs none
    assert spec.fits_node({"CPU": 4, "accelerator_type:H100": 1.0, "ssd": 1.0})
    assert not spec.fits_node({"CPU": 4, "ssd": 1.0})


async def test_a_lending_worker_measures_its_profile_on_its_own_cores(monkeypatch, test_model_path, models_dir) -> None:
    """The scheduler plans with the profile, and a sibling may take its lent core back at any batch."""
    from sloflow.scheduler.live import worker as worker_module
    from sloflow.scheduler.policies.profile import WorkerProfile
    from tests.conftest import TEST_MODEL

    paused_while_profiling: list[bool] = []

    async def profile(backend, name, **_):
        paused_while_profiling.append(backend.spare_cores._paused > 0)
        return WorkerProfile(name, 0.001, 0.01, slots=1, context_tokens=512)

    monkeypatch.setattr(worker_module, "measure_profile", profile)
    spec = WorkerSpec("embedded", TEST_MODEL, threads=1, context_tokens=512, models_dir=str(models_dir), lend_idle_cores=True)
    worker = LLMWorker("w", spec)
    await worker.ready()
    try:
        assert paused_while_profiling == [True]
        assert worker.backend.spare_cores is not None and worker.backend.spare_cores._paused == 0  # lends from then on
    finally:
        await worker.backend.close()


def test_a_workers_file_lends_idle_cores_unless_told_not_to(tmp_path) -> None:
    path = tmp_path / "workers.yaml"
    path.write_text("workers:\n  - {id: a, backend: embedded, model: m}\n  - {id: b, backend: embedded, model: m, lend_idle_cores: false}\n")
    specs = load_worker_specs(path)
    assert [specs["a"].lend_idle_cores, specs["b"].lend_idle_cores] == [True, False]
