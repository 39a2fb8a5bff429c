"""The workflows that ship with sloflow, one module each; importing a module registers its workflow."""

from __future__ import annotations

import importlib

BUILTIN_WORKFLOWS = (
    "sloflow.workflows.builtin.text2sql",
    "sloflow.workflows.builtin.reaper",
    "sloflow.workflows.builtin.react",
    "sloflow.workflows.builtin.sleeptime.learn",
    "sloflow.workflows.builtin.sleeptime.answer",
    "sloflow.workflows.builtin.stream_rag.workflow",
)


def load_builtins() -> None:
    """Register the workflows that ship with sloflow (imported on demand: they pull in retrieval)."""
    for module in BUILTIN_WORKFLOWS:
        importlib.import_module(module)
