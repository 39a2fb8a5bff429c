"""Start a real server process on loopback for a test and stop it afterwards."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator

import httpx

from sloflow.processes import stop


@contextlib.contextmanager
def serving(cmd: list[str], ready_url: str, *, timeout_s: float = 120.0, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Run `cmd` until `ready_url` answers 200; always terminate it on exit."""
    # Output goes to a file, not a pipe: a chatty server would block on a full pipe nobody reads.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                out = log.read().decode(errors="replace")
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}:\n{out[-3000:]}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ready_url} not ready after {timeout_s}s")
            time.sleep(0.3)
        yield proc
    finally:
        stop(proc)
        log.close()
