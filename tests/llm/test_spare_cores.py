"""Idle-core lending: who borrows whose core, and when a sibling takes it back (no model)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from sloflow.llm.spare_cores import LOAD_WINDOW_S, HostLoad, SpareCores


def load_of(cores: float) -> HostLoad:
    """A host where the other processes use `cores` cores; every reading is one second after the last."""
    clock = iter(range(1, 10_000))
    now = [0.0]

    def tick() -> float:
        now[0] = float(next(clock))
        return now[0]

    return HostLoad(read=lambda: (cores * now[0], 0.0), clock=tick)


def pool(tmp_path: Path, n: int, *, cores: int = 2, foreign: float = 0.0) -> list[SpareCores]:
    return [SpareCores(1, tmp_path, cores=cores, load=load_of(foreign)) for _ in range(n)]


def threads_of(worker: SpareCores) -> int:
    with worker.running(), worker.batch() as threads:
        return threads


def test_a_worker_alone_borrows_an_idle_siblings_core_and_not_a_busy_ones(tmp_path: Path) -> None:
    a, b = pool(tmp_path, 2)
    assert threads_of(a) == 2
    with b.running():
        assert threads_of(a) == 1


def test_a_sibling_starts_its_call_at_once_and_gets_its_core_back_at_the_borrowers_next_batch(tmp_path: Path) -> None:
    a, b = pool(tmp_path, 2)
    started = threading.Event()
    release = threading.Event()

    def sibling_call() -> None:
        with b.running():
            started.set()
            release.wait(5)

    with a.running():
        with a.batch() as threads:
            assert threads == 2
            t = threading.Thread(target=sibling_call)
            t.start()
            assert started.wait(5)  # no waiting for the borrower's batch to end
        with a.batch() as threads:
            assert threads == 1  # the next batch leaves the sibling's core alone
        release.set()
        t.join(5)
        with a.batch() as threads:
            assert threads == 2


def test_two_borrowers_never_take_one_core(tmp_path: Path) -> None:
    a, b, _ = pool(tmp_path, 3, cores=4)
    with a.running(), b.running(), a.batch() as lent_to_a, b.batch() as lent_to_b:
        # a is busy, so b cannot borrow a's core, and the idle third one is a's for this batch
        assert (lent_to_a, lent_to_b) == (2, 1)


def test_no_lending_while_other_processes_load_the_host_or_before_the_load_is_known(tmp_path: Path) -> None:
    (a, _), (c, _) = pool(tmp_path / "busy", 2, foreign=1.0), pool(tmp_path / "unknown", 2)
    assert threads_of(a) == 1
    c._load = HostLoad(read=lambda: None)  # no /proc/stat
    assert threads_of(c) == 1


def test_borrowing_stops_at_the_hosts_cores(tmp_path: Path) -> None:
    a, *_ = pool(tmp_path, 3, cores=2)
    assert threads_of(a) == 2
    (d, _) = pool(tmp_path / "one-core", 2, cores=1)
    assert threads_of(d) == 1


def test_a_paused_worker_and_a_worker_running_two_calls_compute_on_their_own_threads(tmp_path: Path) -> None:
    a, _ = pool(tmp_path, 2)
    with a.paused():
        assert threads_of(a) == 1
    with a.running(), a.running(), a.batch() as threads:
        assert threads == 1  # two calls already share this worker's core


def test_a_dead_workers_files_are_removed_and_its_core_is_not_counted(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    name = f"{dead.stdout.strip()}-deadbeef-1"
    for suffix in (".busy", ".core"):
        (tmp_path / f"{name}{suffix}").touch()
    (a,) = pool(tmp_path, 1)
    assert threads_of(a) == 1
    assert not list(tmp_path.glob(f"{name}.*"))


def test_a_closed_worker_leaves_the_pool(tmp_path: Path) -> None:
    a, b = pool(tmp_path, 2)
    b.close()
    assert threads_of(a) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{a.name}.busy", f"{a.name}.core"])


def test_host_load_counts_other_processes_cpu_over_its_window() -> None:
    now = [0.0]
    readings = iter([(0.0, 0.0), (1.5, 1.0), (2.0, 1.0)])  # (host busy s, this process's s)
    load = HostLoad(read=lambda: next(readings), clock=lambda: now[0])
    assert load.others() is None  # one sample: no window yet
    now[0] = 1.0
    assert load.others() == 0.5  # 1.5 s busy, 1.0 of it ours, over 1 s
    now[0] = 1.0 + LOAD_WINDOW_S / 2
    assert load.others() == 0.5  # inside the window: the last verdict stands, nothing is read
    now[0] = 2.0
    assert load.others() == 0.5  # 0.5 s busy, none of it ours, over 1 s


def test_batches_are_counted_and_reported_once_by_whether_they_ran_on_lent_cores(tmp_path: Path, monkeypatch) -> None:
    from sloflow.scheduler.live import metrics

    incs: list[tuple[int, str]] = []

    class Counter:
        def inc(self, n: int, tags: dict[str, str]) -> None:
            incs.append((n, tags["lent"]))

    monkeypatch.setattr(metrics, "_series", lambda: {"batches": Counter()})
    a, b = pool(tmp_path, 2)
    threads_of(a)
    with b.running():
        threads_of(a)
        threads_of(a)
    assert (a.batches, a.lent_batches) == (3, 1)
    reporter = metrics.WorkerMetrics("w")
    reporter.batches(a)
    reporter.batches(a)  # nothing new: nothing reported
    assert sorted(incs) == [(1, "true"), (2, "false")]
