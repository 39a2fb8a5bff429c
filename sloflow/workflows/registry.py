"""Workflows by name: the built-in ones and any a user registers or loads from a file."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

from sloflow.errors import ConfigError, NotFound
from sloflow.workflows.dsl import Workflow
from sloflow.workflows.graph_workflow import GraphWorkflow

AnyWorkflow = Workflow | GraphWorkflow


class Registry:
    """Named workflows; a definition is validated as a whole when it is added."""

    def __init__(self) -> None:
        self._workflows: dict[str, AnyWorkflow] = {}

    def add(self, workflow: AnyWorkflow) -> AnyWorkflow:
        """Register `workflow` under its name (replacing a definition from a reloaded module)."""
        workflow.validate()
        self._workflows[workflow.name] = workflow
        return workflow

    def get(self, name: str) -> AnyWorkflow:
        """The workflow called `name`, or `NotFound` listing the known ones."""
        try:
            return self._workflows[name]
        except KeyError:
            known = sorted(self._workflows)
            raise NotFound(f"no workflow named {name!r}; registered: {known or 'none'}", details={"workflows": known}) from None

    def __iter__(self) -> Iterator[AnyWorkflow]:
        return iter(sorted(self._workflows.values(), key=lambda w: w.name))

    def __len__(self) -> int:
        return len(self._workflows)


workflows = Registry()  # the process-wide registry the CLI and the API serve


def register(workflow: AnyWorkflow) -> AnyWorkflow:
    """Add `workflow` to the process-wide registry and return it."""
    return workflows.add(workflow)


def load(source: str) -> None:
    """Import a module by dotted name or a `.py` file by path, so its workflows register."""
    path = Path(source)
    if source.endswith(".py"):
        if not path.is_file():
            raise ConfigError(f"no workflow file at {source}")
        name = f"sloflow_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return
    try:
        importlib.import_module(source)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot load workflows from {source!r}: {exc}") from None
