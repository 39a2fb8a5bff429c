"""The disk under the runtime's SQLite files (runs, checkpoints): opening them when it is read-only, and
telling a read-only disk from a full one when a write is refused.

On a read-only disk (a read-only mount, or a folder the server may not write) the runtime still
starts and serves the runs it recorded; every write fails with a `StorageError` saying what to do.
SQLite cannot simply open a WAL database read-only there: it creates a `-shm` file beside it,
which a read-only folder cannot hold.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from sloflow.errors import StorageError

_READ_ONLY_FIX = "remount it read-write (or point SLOFLOW_HOME at a writable folder), then restart sloflow"


def sqlite_target(path: Path, what: str) -> tuple[str, bool]:
    """What to connect to for the database at `path`: (its path, False), or (a read-only URI, True) on a read-only disk.

    Creates the folder when missing; `what` names the database in errors ("the run store").
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the folder of {what} {path} ({exc.strerror}); {_READ_ONLY_FIX}",
                           details={"path": str(path), "cause": "read_only"}) from None
    if os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK)):
        return str(path), False
    if not path.exists():
        raise StorageError(f"{what} {path} does not exist and its folder is read-only; {_READ_ONLY_FIX}",
                           details={"path": str(path), "cause": "read_only"})
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        # A process died with commits still in the journal: read through it, which needs its -shm.
        uri = f"{path.resolve().as_uri()}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
                db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(
                f"{what} {path} is on a read-only disk and cannot be read ({exc}): the last process left commits in its "
                f"journal that SQLite must recover by writing; {_READ_ONLY_FIX}",
                details={"path": str(path), "cause": "read_only"},
            ) from None
        return uri, True
    # Nothing waits in a journal, so the file is the whole database, and no process can change it
    # while its disk is read-only: SQLite may read it as immutable, without a -shm file.
    return f"{path.resolve().as_uri()}?immutable=1", True


def write_refused(what: str, path: Path | str, exc: sqlite3.OperationalError) -> StorageError:
    """The error for a write SQLite refused, saying whether the disk is read-only, full, or failing."""
    details = {"path": str(path)}
    code = exc.sqlite_errorcode & 0xFF  # the primary code; an extended code keeps it in its low byte
    if code == sqlite3.SQLITE_READONLY:
        return StorageError(
            f"{what} {path} is on a read-only disk, so new runs and their progress cannot be recorded; {_READ_ONLY_FIX}; "
            "runs already recorded can still be read",
            details={**details, "cause": "read_only"},
        )
    if code == sqlite3.SQLITE_FULL:
        return StorageError(
            f"{what} {path} cannot be written: its disk is full; free space on it (it lives under SLOFLOW_HOME); "
            "runs already recorded can still be read",
            details={**details, "cause": "disk_full"},
        )
    return StorageError(
        f"{what} {path} cannot be written ({exc}); check its disk (it lives under SLOFLOW_HOME); "
        "runs already recorded can still be read",
        details={**details, "cause": "io_error"},
    )
