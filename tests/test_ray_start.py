"""The Ray start-up helper keeps every Ray port on loopback, locally and when joining a cluster."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import free_port

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}


def test_local_ray_listens_on_loopback_only() -> None:
    # In a subprocess, so this test owns its Ray instance whatever other tests do.
    code = textwrap.dedent(
        """
        import json, os, psutil, ray
        from sloflow.config import Settings
        from sloflow.ray_start import start_ray
        start_ray(Settings(ray_address=None), num_cpus=1, dashboard=True)
        session = ray._private.worker._global_node.get_session_dir_path()
        mine = [p for p in psutil.process_iter(["cmdline"]) if session in " ".join(p.info["cmdline"] or [])]
        ray_pids = {os.getpid()} | {p.pid for p in mine}
        ray_pids |= {c.pid for p in mine for c in p.children(recursive=True)}
        addrs = sorted({c.laddr.ip for c in psutil.net_connections("inet")
                        if c.status == psutil.CONN_LISTEN and c.pid in ray_pids})
        ray.shutdown()
        print(json.dumps(addrs))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    addrs = json.loads(out.stdout.strip().splitlines()[-1])
    assert addrs, "Ray listened on nothing?"
    assert set(addrs) <= LOOPBACK, addrs


def _group(pgid: int) -> set[int]:
    """The live (not zombie) processes of group `pgid`."""
    import psutil

    pids = set()
    for p in psutil.process_iter(["status"]):
        with contextlib.suppress(OSError):
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pgid:
                pids.add(p.pid)
    return pids


def _listening_addresses(pgid: int) -> set[str]:
    """The addresses every process of group `pgid` listens on."""
    import psutil

    pids = _group(pgid)
    return {c.laddr.ip for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in pids}


@contextlib.contextmanager
def ray_head(port: int) -> Iterator[int]:
    """A `ray start --head` on loopback in its own process group; yields the group, always stops it.

    Stopped by signalling that group, not with `ray stop`, which would stop every Ray on the machine.
    """
    temp = tempfile.mkdtemp(prefix="rayhead", dir="/tmp")  # short: Ray's unix socket paths have a length limit
    ports = {
        flag: free_port()
        for flag in (
            "--ray-client-server-port", "--dashboard-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
            "--metrics-export-port", "--runtime-env-agent-port", "--node-manager-port", "--object-manager-port",
        )
    }
    cmd = [
        str(Path(sys.executable).with_name("ray")), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
        "--include-dashboard=false", "--num-cpus=1", f"--temp-dir={temp}", "--disable-usage-stats",
        *(f"{flag}={p}" for flag, p in ports.items()),
    ]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # with --node-ip-address, keeps every port on loopback
    log = tempfile.TemporaryFile()
    head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if head.wait(timeout=120) != 0:
            log.seek(0)
            raise RuntimeError(f"ray start --head failed:\n{log.read().decode(errors='replace')[-3000:]}")
        yield head.pid
    finally:
        _stop_group(head.pid)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _stop_group(pgid: int) -> None:
    # The GCS and raylet take over 10 s to honour SIGTERM; the head is throwaway, so be brief.
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        end = time.monotonic() + grace
        while time.monotonic() < end:
            if not _group(pgid):  # killpg(pgid, 0) would still see the zombies nobody has reaped yet
                return
            time.sleep(0.2)


def test_start_ray_joins_a_loopback_cluster_by_explicit_address() -> None:
    # The driver runs in a subprocess: this process may already hold the session's local Ray.
    code = textwrap.dedent(
        """
        import asyncio, json, ray
        from sloflow.config import get_settings
        from sloflow.llm.client import CallContext
        from sloflow.llm.types import GenerateRequest
        from sloflow.ray_start import start_ray
        from sloflow.scheduler.live.client import SchedulerClient
        from sloflow.scheduler.live.dispatcher import start_scheduler
        from sloflow.scheduler.live.worker import WorkerSpec
        from sloflow.scheduler.policies.profile import WorkerProfile

        start_ray(get_settings())
        profile = WorkerProfile("emulated:joined", 0.0005, 0.002, slots=1, context_tokens=4096)
        spec = WorkerSpec("emulated", "joined", emulated=(0.0005, 0.002, 0.0), num_cpus=0, profile=profile)
        dispatcher = start_scheduler({"joined": spec})
        out = asyncio.run(SchedulerClient(dispatcher).generate(GenerateRequest(prompt="hi", max_tokens=4), CallContext()))
        print(json.dumps({"gcs": ray.get_runtime_context().gcs_address, "tokens": out.completion_tokens, "model": out.model}))
        ray.shutdown()
        """
    )
    port = free_port()
    with ray_head(port) as group:
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
        env["SLOFLOW_RAY_ADDRESS"] = f"127.0.0.1:{port}"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
        addrs = _listening_addresses(group)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"gcs": f"127.0.0.1:{port}", "tokens": 4, "model": "emulated:joined"}
    assert addrs and addrs <= LOOPBACK, addrs
