"""Writing a demo database file so that a half-written one never looks finished."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path


def write_database(path: Path, fill: Callable[[sqlite3.Connection], None]) -> Path:
    """Build a SQLite file with `fill` under a temporary name, then move it to `path` (replacing it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        fill(conn)
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, path)
    return path
