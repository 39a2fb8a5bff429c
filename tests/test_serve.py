"""`sloflow serve` as a user starts it: a real process on loopback answering health and chat."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.serving import serving


def _sloflow() -> str:
    return shutil.which("sloflow", path=str(Path(sys.executable).parent)) or "sloflow"


def test_serve_answers_through_the_scheduler(test_model_path: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SLOFLOW_MODEL": "smollm2-135m",
        "SLOFLOW_PORT": str(port),
        "SLOFLOW_THREADS": "2",
        "SLOFLOW_HOME": str(tmp_path),
        "SLOFLOW_RAY_DASHBOARD": "false",
    }
    base = f"http://127.0.0.1:{port}"
    with serving([_sloflow(), "serve"], f"{base}/v1/health", env=env, timeout_s=240):
        key_file = tmp_path / "local.key"  # made on first start, for the local tenant's admin
        assert key_file.stat().st_mode & 0o777 == 0o600
        auth = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "deadline_s": 30}
        refused = httpx.post(f"{base}/v1/chat/completions", json=chat, timeout=60)
        assert refused.status_code == 401 and "Authorization: Bearer" in refused.json()["message"]
        resp = httpx.post(f"{base}/v1/chat/completions", json=chat, headers=auth, timeout=60)
        assert resp.status_code == 200
        assert resp.json()["usage"]["completion_tokens"] > 0
        names = [w["name"] for w in httpx.get(f"{base}/v1/workflows", headers=auth, timeout=10).json()["workflows"]]
        assert "text2sql" in names
        assert "shop" in httpx.get(f"{base}/v1/databases", headers=auth, timeout=10).text  # the demo database
        workers = httpx.get(f"{base}/v1/admin/workers", headers=auth, timeout=10).json()["workers"]
        assert len(workers) == 2 and all(w["profile"]["decode_s_per_token"] > 0 for w in workers)
        # The scheduler's series reach /metrics via Ray's export (Ray publishes them within ~10 s).
        deadline = time.monotonic() + 40
        while "ray_sloflow_calls_total" not in (text := httpx.get(f"{base}/metrics", timeout=10).text):
            assert time.monotonic() < deadline, text[-2000:]
            time.sleep(2)


def test_invalid_setting_fails_at_start_naming_it() -> None:
    env = {**os.environ, "SLOFLOW_PORT": "not-a-port"}
    proc = subprocess.run([_sloflow(), "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "SLOFLOW_PORT" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_model_fails_with_the_choices() -> None:
    proc = subprocess.run([_sloflow(), "serve", "--model", "nope-7b"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "smollm2-135m" in proc.stderr


def test_bench_backends_quick_prints_one_json_line(test_model_path: Path) -> None:
    proc = subprocess.run(
        [_sloflow(), "bench", "backends", "--quick", "--models", "smollm2-135m"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    import json

    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["smollm2-135m_decode_tok_s"] > 0 and figures["smollm2-135m_prefill_tok_s"] > 0


@pytest.mark.parametrize("name", ["nope"])
def test_bench_unknown_name(name: str) -> None:
    proc = subprocess.run([_sloflow(), "bench", name], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "backends" in proc.stderr


@pytest.mark.parametrize(("name", "option"), [("backends", "--models"), ("scheduler", "--"), ("reaper", "--")])
def test_bench_name_help_lists_that_benchmarks_own_options(name: str, option: str) -> None:
    proc = subprocess.run([_sloflow(), "bench", name, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"usage: sloflow bench {name}" in proc.stdout and "--quick" in proc.stdout and option in proc.stdout


def test_bench_help_without_a_name_lists_the_benchmarks() -> None:
    proc = subprocess.run([_sloflow(), "bench", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "reaper" in proc.stdout
