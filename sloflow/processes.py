"""Child processes and loopback ports: for the servers and load generators that benchmarks and tests start."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout_s: float = 20.0) -> None:
    """Ask `proc` to end (SIGTERM), and kill it if it has not within `timeout_s`."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_ready(proc: subprocess.Popen[bytes], ready: Callable[[], bool], *, timeout_s: float, output: Callable[[], str]) -> None:
    """Poll `ready()` until it holds; raise with the tail of `output()` if `proc` exits first, or after `timeout_s`.

    `ready` may raise `httpx.HTTPError` while the server is still binding its port."""
    end = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}:\n{output()[-3000:]}")
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > end:
            raise TimeoutError(f"{proc.args[0]} was not ready after {timeout_s:.0f} s")
        time.sleep(0.3)
