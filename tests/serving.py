"""Start a real server process on loopback for a test and stop it afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
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


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL `proc`, started with `start_new_session=True`, then whatever it left in its session.

    A killed `sloflow serve` cannot stop its local Ray: Ray's agents outlive it, reparented to init.
    The session holds only what `proc` started, so sweeping it ends no one else's process.
    """
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getsid(pid) == proc.pid:
                os.kill(pid, signal.SIGKILL)
