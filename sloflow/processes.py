"""Child processes and loopback ports: for the servers and load generators that benchmarks and tests start."""

from __future__ import annotations

import socket
import subprocess


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
