"""Scheduler test fixtures: one loopback Ray per session, shared by every live test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    import ray

    from sloflow.config import get_settings
    from sloflow.ray_start import start_ray

    start_ray(get_settings(), num_cpus=2, dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    path = SHARED_DATA / "traces"
    if not (path / "chess").is_dir() or not (path / "gpu_latency").is_dir():
        pytest.skip(f"scheduler traces are missing under {path}")
    return path
