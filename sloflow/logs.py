"""One logging set-up for the whole process: JSON for log pipelines, text for people.

Every line carries the ids of what it is about (run, workflow, stage, call, worker, tenant): the
runtime binds a run's and a stage's ids with `log_fields` for everything logged inside them, and
code that handles a call in another process (dispatcher, workers) passes them as `extra`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

IDS = ("run_id", "workflow", "stage", "call_id", "worker", "tenant")

_bound: ContextVar[dict[str, Any]] = ContextVar("sloflow_log_fields", default={})


@contextlib.contextmanager
def log_fields(**fields: Any) -> Iterator[None]:
    """Add these ids (None ones skipped) to every line logged in this block, tasks started in it included."""
    token = _bound.set({**_bound.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _bound.reset(token)


def ids_of(record: logging.LogRecord) -> dict[str, Any]:
    """The ids a line is about: those bound around it, then those passed with `extra`."""
    ids = dict(_bound.get())
    for key in IDS:
        value = getattr(record, key, None)
        if value is not None and value != "":
            ids[key] = value
    return ids


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **ids_of(record),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger: message [run_id=... stage=...]` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = ids_of(record)
        if not ids:
            return line
        return f"{line} [{' '.join(f'{k}={v}' for k, v in ids.items())}]"


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Configure the root logger once; later calls replace the handler rather than stacking."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def setup_from_settings() -> None:
    """`setup_logging` with SLOFLOW_LOG_LEVEL and SLOFLOW_LOG_FORMAT; Ray runs it in every worker process."""
    from sloflow.config import get_settings

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_format)
