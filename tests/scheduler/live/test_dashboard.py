"""The Ray dashboard's Actors page lists sloflow's actors by name, with their repr, in headless Chromium.

The driver runs in a subprocess, so it owns a Ray with the dashboard on (the session's shared Ray
has it off), with Ray's token auth off: a headless browser cannot type the token into the page's
prompt, which is how a person passes it. Needs Debian's `chromium`; skipped with a message where
it is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DRIVER = textwrap.dedent(
    """
    import json, sys, ray
    from sloflow.config import Settings
    from sloflow.ray_start import start_ray
    from sloflow.scheduler.live.dispatcher import start_scheduler
    from sloflow.scheduler.live.worker import WorkerSpec
    from sloflow.scheduler.policies.profile import WorkerProfile

    start_ray(Settings(ray_address=None), num_cpus=1, dashboard=True)
    profile = WorkerProfile("emulated:dash", 0.0005, 0.01, slots=2, context_tokens=4096)
    spec = WorkerSpec("emulated", "dash-model", slots=2, emulated=(0.0005, 0.01, 0.0), num_cpus=0, profile=profile)
    dispatcher = start_scheduler({"dash-a": spec}, name="sloflow-dispatcher-dash")  # held: an unreferenced actor dies
    print(json.dumps({"url": ray._private.worker._global_node.webui_url}), flush=True)
    sys.stdin.readline()  # hold the actors until the test has looked
    ray.shutdown()
    """
)


def _chromium(browser: str, url: str, *args: str) -> str:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000", "--virtual-time-budget=15000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout


def test_the_dashboards_actors_page_shows_the_sloflow_actors_by_name(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium): the dashboard page is not checked")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = driver.stdout.readline() if driver.stdout else ""
        assert line, driver.stderr.read()[-3000:] if driver.stderr else "the driver printed nothing"
        url = json.loads(line)["url"]
        assert url.startswith("127.0.0.1:"), url  # the dashboard binds loopback only
        page = f"http://{url}/#/actors"
        dom = _chromium(browser, page, "--dump-dom")
        shot = tmp_path / "actors.png"
        _chromium(browser, page, f"--screenshot={shot}")
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            driver.communicate("done\n", timeout=60)
        if driver.poll() is None:
            driver.kill()
    assert "sloflow-worker-dash-a" in dom and "sloflow-dispatcher-dash" in dom, dom[-2000:]
    assert "LLMWorker(dash-a, emulated dash-model, slots=2, queued=0)" in dom  # the Repr column
    assert "ALIVE x 2" in dom or dom.count(">ALIVE<") >= 2, dom[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000  # a drawn page, not a blank one
