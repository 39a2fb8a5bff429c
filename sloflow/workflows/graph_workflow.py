"""An existing compiled LangGraph graph, registered and run as a sloflow workflow.

When its nodes know nothing of sloflow, the runtime derives stage events from LangGraph's task
stream and cancels between nodes; the whole SLO is the budget of every node. A graph built from a
`Workflow` and then extended keeps its stages' contexts, budgets and events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from pydantic import TypeAdapter

from sloflow.errors import ConfigError
from sloflow.workflows.checkpoints import allow_state_types
from sloflow.workflows.context import RunScope
from sloflow.workflows.state import check_input, input_adapter


@dataclass
class GraphWorkflow:
    """A compiled LangGraph graph under a workflow name, input schema and default SLO."""

    name: str
    graph: Pregel
    state: Any = None  # the input schema; default: the graph's own
    slo: float | None = None
    description: str = ""
    _input: TypeAdapter[Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.graph, Pregel):
            raise ConfigError(f"workflow {self.name!r}: expected a compiled LangGraph graph, got {type(self.graph).__name__}")
        if self.slo is not None and self.slo <= 0:
            raise ConfigError(f"workflow {self.name!r}: slo must be positive seconds or None, got {self.slo}")
        if self.state is None:
            builder = getattr(self.graph, "builder", None)
            self.state = getattr(builder, "input_schema", None) or dict
        self._input = input_adapter(self.state)

    @property
    def has_sloflow_stages(self) -> bool:
        """Whether the graph was built from a sloflow `Workflow` (its nodes take a `RunScope`)."""
        return getattr(getattr(self.graph, "builder", None), "context_schema", None) is RunScope

    def validate(self) -> None:
        """Nothing to check: LangGraph validated the graph when it was compiled."""

    def validate_input(self, data: Any) -> Any:
        """`data` checked against the graph's input schema."""
        return check_input(self._input, self.name, data)

    def check_admission(self, value: Any, tools: Any) -> None:
        """A LangGraph graph declares no admission checks."""

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of a run's input."""
        return self._input.json_schema()

    @property
    def stage_names(self) -> list[str]:
        """The graph's nodes."""
        return [n for n in self.graph.nodes if not n.startswith("__")]

    def compile(self, checkpointer: BaseCheckpointSaver | None = None) -> Pregel:
        """The graph, with `checkpointer` in place of its own."""
        builder = getattr(self.graph, "builder", None)
        if checkpointer is not None and isinstance(builder, StateGraph):
            checkpointer = allow_state_types(checkpointer, builder)
        return self.graph.copy(update={"checkpointer": checkpointer})
