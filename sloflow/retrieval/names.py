"""Names of indexes and databases: safe as folder names and as Chroma collection names."""

from __future__ import annotations

import re

from sloflow.errors import InvalidRequest

# Chroma's collection-name rules (3-512 characters) narrowed to 64, also safe as a folder name.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,62}[A-Za-z0-9]$")


def check_name(name: str, what: str = "index") -> str:
    """Names are 3-64 letters, digits, `_`, `.`, `-`, starting and ending alphanumeric."""
    if not _NAME.match(name):
        raise InvalidRequest(
            f"{what} name {name!r} is invalid: use 3-64 letters, digits, '_', '.' or '-', starting and ending with a letter or digit"
        )
    return name
