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
from typing import IO

import pytest

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
def ray_head(port: int, resources: str = "{}") -> Iterator[int]:
    """A `ray start --head` on loopback in its own process group; yields the group, always stops it.

    Stopped by signalling that group, not with `ray stop`, which would stop every Ray on the machine.
    """
    temp = tempfile.mkdtemp(prefix="rayhead", dir="/tmp")  # short: Ray's unix socket paths have a length limit
    flags = (
        "--ray-client-server-port", "--dashboard-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
        "--metrics-export-port", "--runtime-env-agent-port", "--node-manager-port", "--object-manager-port",
    )
    # Distinct: free_port can hand out a port again once its probe closed, and Ray refuses a port given twice.
    ports: dict[str, int] = {}
    while len(ports) < len(flags):
        if (p := free_port()) != port and p not in ports.values():
            ports[flags[len(ports)]] = p
    cmd = [
        str(Path(sys.executable).with_name("ray")), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
        "--include-dashboard=false", "--num-cpus=1", f"--resources={resources}", f"--temp-dir={temp}", "--disable-usage-stats",
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


def test_node_without_a_head_fails_at_once_saying_what_to_start() -> None:
    sloflow = [sys.executable, "-m", "sloflow.cli", "node"]
    nobody = subprocess.run([*sloflow, f"--address=127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60)
    assert nobody.returncode == 2 and "ray start --head --node-ip-address=127.0.0.1" in nobody.stderr, nobody.stderr
    remote = subprocess.run([*sloflow, "--address=10.1.2.3:6379"], capture_output=True, text=True, timeout=60)
    assert remote.returncode == 2 and "ray start --address=10.1.2.3:6379" in remote.stderr, remote.stderr


# Two workers on two nodes, placed by the accelerator each node offers (as `sloflow serve --workers`).
# The A100 one is three times cheaper, so the default policy gives it the calls (least-harm keeps
# calls on the cheapest worker while deadlines allow, and an emulated worker measures no batching
# slowdown to push them elsewhere): it holds calls while the load lasts. With two equal workers,
# the one profiling found a hair cheaper took all 32 calls; when that was the head's, the node's
# worker never served, and the driver waited for it to serve for ever.
TWO_NODE_WORKERS = """
workers:
  - {id: on-a100, backend: emulated, model: a100, slots: 2, accelerator: A100, emulated: {decode_s_per_token: 0.01}}
  - {id: on-t4, backend: emulated, model: t4, slots: 2, accelerator: T4, emulated: {decode_s_per_token: 0.03}}
"""

# Places the workers, waits for the test's go, then runs workflows and stops the A100 node under load.
TWO_NODE_DRIVER = textwrap.dedent(
    """
    import asyncio, faulthandler, json, os, signal, sys, time
    from collections import Counter
    from pathlib import Path
    import ray
    from pydantic import BaseModel
    from sloflow import Workflow
    from sloflow.config import get_settings
    from sloflow.ray_start import start_ray
    from sloflow.scheduler.live.client import SchedulerClient
    from sloflow.scheduler.live.dispatcher import start_scheduler
    from sloflow.scheduler.live.worker_file import load_worker_specs
    from sloflow.workflows import MemoryRunStore, Registry, Runtime

    class Answer(BaseModel):
        question: str
        draft: str = ""
        answer: str = ""

    wf = Workflow("draft-polish", state=Answer, slo=90.0)

    @wf.stage
    async def draft(s, ctx):
        return {"draft": await ctx.llm.text(s.question, max_tokens=30)}

    @wf.stage
    async def polish(s, ctx):
        return {"answer": await ctx.llm.text(s.draft, max_tokens=30)}

    registry = Registry()
    registry.add(wf.then(draft, polish))
    runtime = None  # set once the workers are placed
    began = time.monotonic()

    def answered():  # the worker that answered each call so far
        return [e.data["worker"] for r in runtime.runs() for e in runtime.store.events(r.id) if e.kind == "llm_call"]

    def accelerators():
        return sorted(k for n in ray.nodes() if n["Alive"] for k in n["Resources"] if k.startswith("accelerator_type:"))

    def reached(step):  # on stderr, so a failure shows how far the driver got and how long each step took
        print(f"driver: {step} at {time.monotonic() - began:.1f} s", file=sys.stderr, flush=True)

    def dump_tasks():
        # Each task's whole await chain (Task.print_stack shows only its outermost coroutine),
        # the same chains counted once.
        chains = Counter()
        for task in asyncio.all_tasks():
            chain, aw = [], task.get_coro()
            while hasattr(aw, "cr_frame") or hasattr(aw, "ag_frame"):
                frame = getattr(aw, "cr_frame", None) or getattr(aw, "ag_frame", None)
                if frame is not None:
                    chain.append(f"{frame.f_code.co_name} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})")
                aw = getattr(aw, "cr_await", None) or getattr(aw, "ag_await", None)
            chains[" > ".join([*chain, type(aw).__name__])] += 1
        for chain, n in chains.most_common():
            print(f"{n} task(s): {chain}", file=sys.stderr, flush=True)
        asyncio.ensure_future(dump_cluster())

    async def dump_cluster():
        # What the head and the dispatcher believe, and who answered: a call waiting on a worker
        # its node took with it, or a worker that never had a call, shows here.
        print("nodes alive:", [n["Alive"] for n in ray.nodes()], file=sys.stderr, flush=True)
        if runtime is not None:
            print("answered by:", dict(Counter(answered())), file=sys.stderr, flush=True)
        dispatcher = ray.get_actor("sloflow-dispatcher")
        workers = await asyncio.wait_for(dispatcher.workers.remote(), 2)
        held = [{k: w[k] for k in ("id", "queued", "running", "draining")} for w in workers]
        print("dispatcher:", held, await asyncio.wait_for(dispatcher.stats.remote(), 2), file=sys.stderr, flush=True)

    async def until(check, what, timeout_s):  # poll `check`; fail saying what did not happen
        end = time.monotonic() + timeout_s
        while not await check():
            if time.monotonic() > end:
                raise TimeoutError(f"{what} not within {timeout_s} s; answered by {dict(Counter(answered()))}")
            await asyncio.sleep(0.02)

    async def main():
        global runtime
        # SIGUSR1 is the test asking a hung driver where it waits: every coroutine's await (when the
        # loop still turns) and, from C, every thread's stack (when it does not).
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=True)
        start_ray(get_settings())
        reached("connected")
        placed = accelerators()
        dispatcher = await asyncio.to_thread(start_scheduler, load_worker_specs(Path(sys.argv[1])))
        reached("placed the workers")
        print(json.dumps({"accelerators": placed}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # the test looks at what every Ray process listens on
        runtime = Runtime(MemoryRunStore(), None, client=SchedulerClient(dispatcher), registry=registry)
        runs = [asyncio.ensure_future(runtime.run("draft-polish", {"question": f"question {i}"})) for i in range(16)]
        leaving = ray.get_actor("sloflow-worker-on-a100")

        async def serves_and_holds():
            return "on-a100" in answered() and bool((await leaving.state.remote())["running"])

        await until(serves_and_holds, "on-a100 answering a call and holding another", 30)
        reached("on-a100 serves: stopping its node")
        os.kill(int(os.environ["NODE_PID"]), signal.SIGTERM)
        done = await asyncio.wait_for(asyncio.gather(*runs), 90)
        reached("the 16 runs ended")
        calls = answered()
        after = await asyncio.wait_for(runtime.run("draft-polish", {"question": "once the node is gone"}), 30)

        async def node_left():
            return sum(n["Alive"] for n in ray.nodes()) == 1

        await until(node_left, "the head seeing the node leave", 30)
        reached("ran one more; the head saw the node leave")
        print(json.dumps({
            "statuses": Counter(r.status.value for r in done), "runs": len({r.id for r in done}),
            "calls": len(calls), "by_worker": Counter(calls), "after": after.status.value,
            "workers": [w["id"] for w in await dispatcher.workers.remote()],
            "redispatched": (await dispatcher.stats.remote())["redispatched"], "alive": accelerators(),
        }), flush=True)
        ray.shutdown()

    asyncio.run(main())
    """
)


def _wait_for_output(log: IO[bytes], text: bytes, proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait until `proc` has written `text` to `log`; False if it exits first or takes longer than `timeout_s`."""
    end = time.monotonic() + timeout_s
    while True:
        log.seek(0)
        if text in log.read():
            return True
        if proc.poll() is not None or time.monotonic() > end:
            return False
        time.sleep(0.2)


def _tail(log: IO[bytes], chars: int = 3000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-chars:]


def _stuck(doing: str, driver: subprocess.Popen, driver_log: IO[bytes], node_log: IO[bytes]) -> str:
    """Why the test gave up on the driver: what it was doing, where it waited (its stacks), its stderr and the node's log."""
    errors, stacks = _tail(driver_log), ""
    if driver.poll() is None:
        before = driver_log.tell()  # _tail read to the end
        os.kill(driver.pid, signal.SIGUSR1)  # the driver prints where it waits to its stderr
        time.sleep(2)
        driver_log.seek(before)
        stacks = f"\n--- driver stacks ---\n{driver_log.read().decode(errors='replace')}"
    state = "did not finish in time" if driver.poll() is None else f"exited with {driver.returncode}"
    return f"the driver, {doing}, {state}{stacks}\n--- driver stderr ---\n{errors}\n--- node ---\n{_tail(node_log)}"


@pytest.mark.faults
@pytest.mark.timeout(660)  # above the sum of its own waits, which fail first and say where the driver was
def test_two_node_loopback_cluster_places_workers_by_accelerator_and_survives_losing_a_node(tmp_path: Path) -> None:
    # `ray start --head` on loopback, plus `sloflow node` (a second `ray start --address` aborts
    # while Ray is kept on loopback); workers land by accelerator; the A100 node stops mid-load.
    port = free_port()
    workers = tmp_path / "workers.yaml"
    workers.write_text(TWO_NODE_WORKERS)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    sloflow = [sys.executable, "-m", "sloflow.cli"]
    with (
        ray_head(port, resources='{"accelerator_type:T4": 1}') as head,
        tempfile.TemporaryFile() as node_log,
        tempfile.TemporaryFile() as driver_out,
        tempfile.TemporaryFile() as driver_log,
    ):
        node = subprocess.Popen(
            [*sloflow, "node", f"--address=127.0.0.1:{port}", "--num-cpus=1", '--resources={"accelerator_type:A100": 1}'],
            env=env, stdout=node_log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            assert _wait_for_output(node_log, b"joined", node, 90), f"the node did not join:\n{_tail(node_log)}"
            driver_env = {**env, "SLOFLOW_RAY_ADDRESS": f"127.0.0.1:{port}", "NODE_PID": str(node.pid)}
            # Output to files, not pipes: the test polls them, so no read can block past its timeout.
            driver = subprocess.Popen(
                [sys.executable, "-c", TWO_NODE_DRIVER, str(workers)], env=driver_env,
                stdin=subprocess.PIPE, stdout=driver_out, stderr=driver_log, start_new_session=True,
            )
            try:
                if not _wait_for_output(driver_out, b"\n", driver, 120):
                    pytest.fail(_stuck("placing the workers", driver, driver_log, node_log))
                addrs = {g: _listening_addresses(g) for g in (head, node.pid, driver.pid)}
                with contextlib.suppress(BrokenPipeError):  # a driver that died is reported below
                    driver.stdin.write(b"go\n")
                    driver.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    driver.wait(timeout=210)  # above the driver's own bounds, which say more
                if driver.returncode is None:
                    pytest.fail(_stuck("running the workflows and stopping the node", driver, driver_log, node_log))
            finally:
                _stop_group(driver.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=30)  # the driver stopped it
            node_exit, node_left = node.returncode, _group(node.pid)
        finally:
            _stop_group(node.pid)
        driver_errors, node_output = _tail(driver_log), _tail(node_log)
        placed, *rest = _tail(driver_out, 100_000).splitlines()
    assert json.loads(placed) == {"accelerators": ["accelerator_type:A100", "accelerator_type:T4"]}
    assert all(addrs.values()) and set().union(*addrs.values()) <= LOOPBACK, addrs
    assert driver.returncode == 0 and rest, driver_errors
    got = json.loads(rest[-1])
    assert got["statuses"] == {"succeeded": 16} and got["runs"] == 16 and got["after"] == "succeeded"
    assert got["calls"] == 32, got  # one answer per stage of each run: none lost, none twice
    assert set(got["by_worker"]) == {"on-a100", "on-t4"}, got  # both nodes served
    assert got["redispatched"] >= 1 and got["workers"] == ["on-t4"], got
    assert got["alive"] == ["accelerator_type:T4"], got
    assert node_exit == 0 and not node_left, (node_exit, node_left, node_output)
