"""Human-readable benchmark progress on stderr (stdout is kept for the final JSON line)."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    """Print one progress line to stderr."""
    print(message, file=sys.stderr, flush=True)
