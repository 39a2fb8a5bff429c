"""The runs page at /ui (static files), the Grafana dashboard shipped beside it, and the page in a browser.

The browser test needs Debian's `chromium`; it is skipped with a message where it is missing.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

from sloflow import Workflow
from sloflow.api.app import create_app
from sloflow.api.ui import UI_DIR
from sloflow.llm.client import DirectClient
from sloflow.llm.emulated import EmulatedBackend
from sloflow.tenancy import LOCAL_TENANT
from sloflow.workflows import MemoryRunStore, Registry, Runtime
from tests.conftest import serving

SLOFLOW = Path(__file__).resolve().parents[2] / "sloflow"


class Q(BaseModel):
    q: str
    plan: str = ""
    a: str = ""


def two_stages() -> Workflow:
    wf = Workflow("two-stage", state=Q, slo=20.0)

    @wf.stage
    async def plan(s, ctx):
        return {"plan": await ctx.llm.text(s.q, max_tokens=4)}

    @wf.stage
    async def answer(s, ctx):
        return {"a": await ctx.llm.text(s.plan, max_tokens=6)}

    return wf.then(plan, answer)


@pytest.fixture
async def ui_app() -> AsyncIterator[tuple[object, Runtime]]:
    registry = Registry()
    registry.add(two_stages())
    # Emulated (labelled) answers: the page draws timings, whatever the text says.
    llm = DirectClient(EmulatedBackend("ui", prefill_s_per_token=0.001, decode_s_per_token=0.01))
    runtime = Runtime(MemoryRunStore(), None, client=llm, registry=registry)
    yield create_app(llm, ["emulated:ui"], open_access=True, runtime=runtime), runtime


async def test_ui_page_and_its_files_are_served(ui_app: tuple[object, Runtime]) -> None:
    app, _ = ui_app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        page = await http.get("/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script src="/ui/ui.js">' in page.text and 'id="timeline"' in page.text
        script = await http.get("/ui/ui.js")
        assert script.status_code == 200 and "/v1/runs/${id}/events" in script.text and "llm_call" in script.text
        dashboard = await http.get("/ui/grafana-dashboard.json")
        assert dashboard.status_code == 200 and dashboard.json()["uid"] == "sloflow"
        assert (await http.get("/ui/nothing.js")).status_code == 404
        assert "/ui" not in (await http.get("/openapi.json")).json()["paths"]


def _defined_series() -> set[str]:
    """Every series sloflow defines with ray.util.metrics, as Prometheus names it."""
    names: set[str] = set()
    for path in SLOFLOW.rglob("*.py"):
        for kind, name in re.findall(r'(Counter|Gauge|Histogram)\(\s*"(sloflow_\w+)"', path.read_text()):
            base = f"ray_{name}"
            names |= {f"{base}_bucket", f"{base}_count", f"{base}_sum"} if kind == "Histogram" else {base}
    return names


def test_grafana_dashboard_queries_only_series_sloflow_exports() -> None:
    dashboard = json.loads((UI_DIR / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\bray_sloflow_\w+", e)}
    defined = _defined_series()
    assert used and not used - defined, f"queried but never exported: {sorted(used - defined)}"
    wanted = ["queue_length", "call_latency_seconds_bucket", "calls_total", "cache_lookups_total",
              "workflow_outcomes_total", "calls_served_total", "redispatched_total"]
    assert all(any(f"ray_sloflow_{w}" in e for e in exprs) for w in wanted)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


async def test_the_page_script_draws_a_finished_runs_timeline_from_a_live_server(ui_app: tuple[object, Runtime]) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the page's script is not run outside a browser")
    app, runtime = ui_app
    run = await runtime.run("two-stage", {"q": "hello"}, tenant=LOCAL_TENANT)
    async with serving(app) as port:
        proc = await asyncio.create_subprocess_exec(
            node, str(Path(__file__).with_name("ui_in_node.js")), f"http://127.0.0.1:{port}", run.id, str(UI_DIR / "ui.js"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    drawn = json.loads(out)
    assert drawn["summary"].startswith("succeeded") and "deadline met" in drawn["summary"]
    svg = drawn["timeline"]
    assert f'data-run="{run.id}"' in svg and 'data-stages="2"' in svg
    assert 'data-stage="plan"' in svg and 'data-stage="answer"' in svg and 'class="deadline"' in svg
    assert svg.count('class="call decode"') == 2  # one LLM call per stage, split into queue, prefill, decode
    assert drawn["calls"].count("<tr>") == 2, drawn
    assert "two-stage" in drawn["runs"] and 'class="met"' in drawn["runs"]


async def test_a_finished_runs_timeline_is_drawn_in_chromium(ui_app: tuple[object, Runtime]) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium): the page is not checked in a browser")
    app, runtime = ui_app
    run = await runtime.run("two-stage", {"q": "hello"}, tenant=LOCAL_TENANT)
    async with serving(app) as port:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000", "--dump-dom",
               f"http://127.0.0.1:{port}/ui#run={run.id}"]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        dom, _ = await asyncio.wait_for(proc.communicate(), 60)
    html = dom.decode()
    assert f'data-run="{run.id}"' in html
    assert 'data-stage="plan"' in html and 'data-stage="answer"' in html and 'class="deadline"' in html
    assert html.count('class="call decode"') == 2  # one LLM call per stage
