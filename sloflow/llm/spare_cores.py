"""Idle-core lending between embedded workers on one host.

`sloflow serve` splits the cores among its workers (two workers of one llama.cpp thread on two
cores), so that two calls run at once. A lone call then computes on one core while the other
idles: a 400-token prompt prefills in about 8 s on one thread and 4 s on two. With lending, each
llama.cpp batch runs on the worker's own threads plus those of sibling workers that are idle at
that moment, as long as no other process is using the machine; a sibling that gets a call has its
core back after the borrower's batch in progress (64 prompt tokens, or one decoded token).

Coordination is by `flock` on two files per worker in a per-host directory, so it needs no server
and a crashed worker's locks go with its process:
- `<name>.busy` is held by the worker while it has a call.
- `<name>.core` is held by a borrower while its batch runs on that worker's core, so that two
  borrowers never take one core.
- Before each batch, a worker alone in its process borrows the `.core` of every sibling whose
  `.busy` is free, up to the host's cores, and gives them back after the batch.
A sibling that gets a call starts at once rather than waiting for the borrower's batch to end: for
the rest of that batch (at most one 64-token chunk) three threads share two cores. Measured with
the 1.5B model, a short call arriving on a sibling whose core was lent took 1.79 s (median of 8)
this way, 1.93 s waiting for the batch, and 1.71 s with no lending at all.

Other processes (another benchmark, a second server) are not in the directory, so a worker borrows
only while the rest of the host used under `FOREIGN_LOAD_MAX` cores over the last quarter second
(`HostLoad`, from /proc/stat): a llama.cpp thread that shares a core stalls its siblings at every
barrier. Lending is off where /proc/stat or `flock` are missing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Cores other processes may use while a worker borrows (Ray's own processes idle at a few percent).
FOREIGN_LOAD_MAX = 0.35
# The host's load is measured over at least this long (from the previous sample, however old: a
# load that started in an idle gap is diluted for one window at most).
LOAD_WINDOW_S = 0.25
# How long the list of sibling workers is trusted before the directory is read again: batches come
# 20-50 times a second, workers start and stop in minutes.
SIBLINGS_TTL_S = 1.0


def default_directory() -> Path:
    """The per-host directory where the workers of this user meet."""
    return Path(tempfile.gettempdir()) / f"sloflow-cores-{os.getuid()}"


def host_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _read_proc_stat() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole host, CPU seconds of this process) so far, or None off Linux."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    own = os.times()
    return (sum(fields[:8]) - idle) / tick, own.user + own.system


class HostLoad:
    """How many cores the processes other than this one used over the last `LOAD_WINDOW_S`."""

    def __init__(self, read: Callable[[], tuple[float, float] | None] = _read_proc_stat, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._clock = clock
        self._ref: tuple[float, float, float] | None = None  # (time, host busy s, own s)
        self._others: float | None = None
        self.others()  # the first window starts now

    def others(self) -> float | None:
        """Cores used by other processes over the last complete window; None until one is measured."""
        now = self._clock()
        if self._ref is None or now - self._ref[0] >= LOAD_WINDOW_S:
            sample = self._read()
            if sample is None:
                return None
            if self._ref is not None:
                t, busy, own = self._ref
                self._others = max(0.0, (sample[0] - busy) - (sample[1] - own)) / (now - t)
            self._ref = (now, *sample)
        return self._others


@dataclass(frozen=True)
class _Sibling:
    name: str
    pid: int
    threads: int


class SpareCores:
    """One worker's part in lending: say it is busy while it computes, borrow idle siblings' cores per batch."""

    def __init__(self, threads: int, directory: Path | None = None, *, cores: int | None = None, load: HostLoad | None = None) -> None:
        self.threads = threads
        self.cores = cores or host_cores()
        self.directory = directory or default_directory()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}-{threads}"
        self._busy = os.open(self.directory / f"{self.name}.busy", os.O_RDWR | os.O_CREAT, 0o600)
        (self.directory / f"{self.name}.core").touch(0o600)  # locked by borrowers only
        self._load = load or HostLoad()
        self._siblings_read: tuple[float, list[_Sibling]] = (-SIBLINGS_TTL_S, [])
        self._mutex = threading.Lock()
        self._running = 0  # calls computing in this process
        self._paused = 0
        self.batches = 0  # batches computed, and those of them that ran on borrowed cores too
        self.lent_batches = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Held by the thread that computes a call: no sibling borrows this worker's core from its next batch on."""
        with self._mutex:
            self._running += 1
            if self._running == 1:
                fcntl.flock(self._busy, fcntl.LOCK_EX)  # waits only for a sibling's instant check
        try:
            yield
        finally:
            with self._mutex:
                self._running -= 1
                if self._running == 0:
                    fcntl.flock(self._busy, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Compute on the worker's own threads only (its profile must say what it does alone)."""
        with self._mutex:
            self._paused += 1
        try:
            yield
        finally:
            with self._mutex:
                self._paused -= 1

    @contextlib.contextmanager
    def batch(self) -> Iterator[int]:
        """The threads for the next llama.cpp batch: this worker's own plus the idle siblings' it borrowed."""
        borrowed = self._borrow() if self._running == 1 and not self._paused else []
        self.batches += 1
        self.lent_batches += bool(borrowed)
        try:
            yield self.threads + sum(threads for _, threads in borrowed)
        finally:
            for fd, _ in borrowed:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _borrow(self) -> list[tuple[int, int]]:
        room = self.cores - self.threads
        if room <= 0:
            return []
        others = self._load.others()
        if others is None or others > FOREIGN_LOAD_MAX:
            return []
        borrowed: list[tuple[int, int]] = []
        read_at, siblings = self._siblings_read
        if time.monotonic() - read_at >= SIBLINGS_TTL_S:
            siblings = self._siblings()
            self._siblings_read = (time.monotonic(), siblings)
        for sib in siblings:
            if sib.threads > room:
                continue
            if self._is_busy(sib):
                continue
            fd = self._try_lock(self.directory / f"{sib.name}.core", fcntl.LOCK_EX)
            if fd is not None:
                borrowed.append((fd, sib.threads))
                room -= sib.threads
        return borrowed

    def _is_busy(self, sib: _Sibling) -> bool:
        fd = self._try_lock(self.directory / f"{sib.name}.busy", fcntl.LOCK_SH)
        if fd is None:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        return False

    @staticmethod
    def _try_lock(path: Path, kind: int) -> int | None:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:  # the sibling closed meanwhile
            return None
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _siblings(self) -> list[_Sibling]:
        out: list[_Sibling] = []
        for path in self.directory.glob("*.core"):
            name = path.stem
            if name == self.name:
                continue
            try:
                pid, _, threads = name.split("-")
                sib = _Sibling(name, int(pid), int(threads))
            except ValueError:
                continue
            if not _alive(sib.pid):  # a worker that died without closing: its files go
                for suffix in (".busy", ".core"):
                    (self.directory / f"{name}{suffix}").unlink(missing_ok=True)
                continue
            out.append(sib)
        return out

    def close(self) -> None:
        """Leave the host's pool."""
        for suffix in (".busy", ".core"):
            (self.directory / f"{self.name}{suffix}").unlink(missing_ok=True)
        os.close(self._busy)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
