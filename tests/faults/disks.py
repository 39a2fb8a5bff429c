"""Real small disks for the fault tests: a tmpfs mounted under the test's folder (needs root; skipped otherwise)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def mount(*args: str) -> None:
    """Run `mount` with `args`; a refusal raises `CalledProcessError` with mount's message."""
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs at `tmp_path/disk`, unmounted on exit; the test is skipped when it cannot be mounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk))
    except (subprocess.CalledProcessError, FileNotFoundError, PermissionError) as exc:
        pytest.skip(f"cannot mount a tmpfs to play the full or read-only disk (needs root): {getattr(exc, 'stderr', exc)}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True)
