"""The sloflow series reach a real Prometheus scraping Ray's metrics export and the API's /metrics.

Needs Debian's `prometheus` binary; skipped with a message where it is missing.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import ray

from sloflow.api.app import create_app
from sloflow.llm.client import CallContext
from sloflow.processes import stop
from sloflow.scheduler.live.client import SchedulerClient
from tests.conftest import free_port, serving
from tests.scheduler.live.test_live import cluster, emulated, req

PROMETHEUS = shutil.which("prometheus")
# Skipped before the Ray fixture starts anything.
pytestmark = [
    pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed (apt-get install prometheus): the scrape is not checked"),
    pytest.mark.usefixtures("ray_session"),
]

SERIES = [
    "ray_sloflow_queue_length", "ray_sloflow_call_latency_seconds_bucket", "ray_sloflow_slo_attainment",
    "ray_sloflow_calls_total", "ray_sloflow_calls_served_total",
]


async def test_prometheus_scrapes_the_sloflow_series(tmp_path: Path) -> None:
    assert PROMETHEUS is not None
    dispatcher, _ = await cluster(emulated("scraped"))
    client = SchedulerClient(dispatcher)
    await asyncio.gather(*(client.generate(req(), CallContext(workflow="scraped-flow", deadline=time.time() + 30)) for _ in range(3)))
    ray_port = ray.nodes()[0]["MetricsExportPort"]
    app = create_app(client, ["emulated:scraped"], open_access=True, metrics_url=f"http://127.0.0.1:{ray_port}/metrics")
    async with serving(app) as api_port:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - {{job_name: ray, static_configs: [{{targets: ['127.0.0.1:{ray_port}']}}]}}\n"
            f"  - {{job_name: sloflow-api, static_configs: [{{targets: ['127.0.0.1:{api_port}']}}]}}\n"
        )
        port = free_port()
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            found: dict[str, set[str]] = {}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as prom:
                for _ in range(60):  # Ray exports every few seconds; Prometheus scrapes every second
                    for name in SERIES:
                        try:
                            got = (await prom.get("/api/v1/query", params={"query": name})).json()
                        except (httpx.HTTPError, ValueError):
                            continue
                        found[name] = {r["metric"].get("job", "") for r in got.get("data", {}).get("result", [])}
                    if all({"ray", "sloflow-api"} <= found.get(n, set()) for n in SERIES):
                        break
                    await asyncio.sleep(1)
        finally:
            stop(proc)
    assert all({"ray", "sloflow-api"} <= found.get(n, set()) for n in SERIES), found
