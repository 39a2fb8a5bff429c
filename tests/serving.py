"""Start a real server process on loopback for a test and stop it afterwards."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator

import httpx

from sloflow.processes import stop, wait_ready


@contextlib.contextmanager
def serving(cmd: list[str], ready_url: str, *, timeout_s: float = 120.0, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Run `cmd` until `ready_url` answers 200; always terminate it on exit."""
    # Output goes to a file, not a pipe: a chatty server would block on a full pipe nobody reads.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        def output() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")

        wait_ready(proc, lambda: httpx.get(ready_url, timeout=2).status_code == 200, timeout_s=timeout_s, output=output)
        yield proc
    finally:
        stop(proc)
        log.close()
