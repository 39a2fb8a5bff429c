"""The workflow DSL: stages declared with a decorator, then edges, branches, loops and fan-outs.

A definition is checked as it is written (async stages, unique names, known targets) and as a
whole when it is compiled or registered (reachability, every cycle bounded by a `loop`). Each
error names the stage to fix.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sloflow.errors import ConfigError
from sloflow.workflows.budget import BudgetPlanner, Cost, Speed
from sloflow.workflows.checkpoints import allow_state_types
from sloflow.workflows.compile import build_graph
from sloflow.workflows.graph_workflow import GraphWorkflow
from sloflow.workflows.stages import Branch, FanOut, Loop, Retry, Stage, StageFn, StageRef
from sloflow.workflows.state import check_input, input_adapter

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph import StateGraph
    from langgraph.graph.state import CompiledStateGraph

# A check at submission: (validated input, the run's tools) -> None, or raise a 4xx error.
Admission = Callable[[Any, Mapping[str, Any]], None]


@dataclass
class Workflow:
    """A named, typed graph of async stages with a default SLO (None: background work)."""

    name: str
    state: type
    slo: float | None = None
    description: str = ""
    speed: Speed = field(default_factory=Speed)
    stages: dict[str, Stage] = field(default_factory=dict, init=False)
    edges: dict[str, str] = field(default_factory=dict, init=False)
    branches: dict[str, Branch] = field(default_factory=dict, init=False)
    loops: dict[str, Loop] = field(default_factory=dict, init=False)
    entry: str | None = field(default=None, init=False)
    _planner: BudgetPlanner | None = field(default=None, init=False, repr=False)
    _names: dict[StageFn, str] = field(default_factory=dict, init=False, repr=False)
    _admission: list[Admission] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.slo is not None and self.slo <= 0:
            raise ConfigError(f"workflow {self.name!r}: slo must be positive seconds or None, got {self.slo}")
        self._input = input_adapter(self.state)

    # --- declaring -------------------------------------------------------------------------

    def stage(
        self,
        fn: StageFn | None = None,
        *,
        name: str | None = None,
        cost: Cost | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        fan_out: FanOut | None = None,
    ) -> Any:
        """Declare an async stage `fn(state, ctx)` (`fn(state, ctx, item)` with `fan_out`)."""

        def declare(f: StageFn) -> StageFn:
            stage_name = name or getattr(f, "__name__", "")
            if not inspect.iscoroutinefunction(f):
                raise ConfigError(f"stage {stage_name!r} of workflow {self.name!r} must be `async def`")
            if stage_name in self.stages:
                raise ConfigError(f"workflow {self.name!r} already has a stage named {stage_name!r}")
            if stage_name.startswith("__") or stage_name.startswith("sloflow_"):
                raise ConfigError(f"stage name {stage_name!r} is reserved; rename the stage")
            wanted = 3 if fan_out is not None else 2
            params = [
                p for p in inspect.signature(f).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            if len(params) != wanted:
                shape = "(state, ctx, item)" if fan_out is not None else "(state, ctx)"
                raise ConfigError(f"stage {stage_name!r} must take {shape}, it takes {len(params)} arguments")
            if isinstance(fan_out, int) and fan_out < 1:
                raise ConfigError(f"stage {stage_name!r}: fan_out must be at least 1")
            if timeout is not None and timeout <= 0:
                raise ConfigError(f"stage {stage_name!r}: timeout must be positive seconds")
            self.stages[stage_name] = Stage(stage_name, f, cost or Cost(), retry, timeout, fan_out)
            self._names[f] = stage_name
            if self.entry is None:
                self.entry = stage_name
            self._planner = None
            return f

        return declare if fn is None else declare(fn)

    def then(self, *chain: StageRef) -> Workflow:
        """Chain stages in order: `then(a, b, c)` runs a, then b, then c."""
        names = [self.name_of(s, "then") for s in chain]
        for src, dst in zip(names, names[1:]):
            self._set_next(src, dst)
        return self

    def start(self, stage: StageRef) -> Workflow:
        """Start runs at `stage` (default: the first declared stage)."""
        self.entry = self.name_of(stage, "start")
        return self

    def branch(
        self,
        after: StageRef,
        choose: Callable[[Any], StageRef],
        options: Sequence[StageRef],
        expected: StageRef | None = None,
    ) -> Workflow:
        """After `after`, go to the stage `choose(state)` names; `expected` is the usual pick."""
        src = self.name_of(after, "branch")
        opts = tuple(self.name_of(o, f"branch after {src!r}") for o in options)
        if not opts:
            raise ConfigError(f"branch after {src!r} needs at least one option")
        usual = self.name_of(expected, f"branch after {src!r}") if expected is not None else opts[0]
        if usual not in opts:
            raise ConfigError(f"branch after {src!r}: expected {usual!r} is not one of its options {list(opts)}")
        if src in self.loops:
            raise ConfigError(f"stage {src!r} already ends a loop; a stage has one way out")
        self._check_free(src)
        self.branches[src] = Branch(src, choose, opts, usual)
        self._planner = None
        return self

    def loop(
        self,
        source: StageRef,
        back_to: StageRef,
        while_: Callable[[Any], bool],
        max_times: int,
        expected: int = 0,
    ) -> Workflow:
        """After `source`, return to `back_to` while `while_(state)`, at most `max_times` times.

        `expected` is how often the loop usually goes round; budgets plan for that many.
        """
        src = self.name_of(source, "loop")
        dst = self.name_of(back_to, f"loop after {src!r}")
        if src in self.loops:
            raise ConfigError(f"stage {src!r} already ends a loop")
        if src in self.branches:
            raise ConfigError(f"stage {src!r} already ends in a branch; a stage has one way out")
        if max_times < 1 or not 0 <= expected <= max_times:
            raise ConfigError(f"loop after {src!r}: need max_times >= 1 and 0 <= expected <= max_times")
        self.loops[src] = Loop(src, dst, while_, max_times, expected)
        self._planner = None
        return self

    # --- checking --------------------------------------------------------------------------

    def validate(self) -> None:
        """Check the definition as a whole; raise `ConfigError` naming the stage to fix."""
        if not self.stages:
            raise ConfigError(f"workflow {self.name!r} has no stages")
        for src in (*self.branches, *self.loops):
            if self.stages[src].fan_out is not None:
                raise ConfigError(
                    f"stage {src!r} fans out, so it cannot end in a branch or loop; add a stage after it for that"
                )
        assert self.entry is not None
        seen, todo = {self.entry}, [self.entry]
        while todo:
            for nxt in self._successors(todo.pop(), with_loops=True):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        unreachable = [s for s in self.stages if s not in seen]
        if unreachable:
            raise ConfigError(
                f"stage {unreachable[0]!r} of workflow {self.name!r} is unreachable from {self.entry!r}; "
                "connect it with then(), branch() or loop(), or remove it"
            )
        cycle = self._unbounded_cycle()
        if cycle:
            raise ConfigError(
                f"stages {' -> '.join(cycle)} form a cycle without a bound; declare the way back with "
                f"loop({cycle[-2]!r}, back_to={cycle[-1]!r}, while_=..., max_times=N)"
            )

    def validate_input(self, data: Any) -> Any:
        """`data` checked against the state schema; `InvalidInput` names the fields at fault."""
        return check_input(self._input, self.name, data)

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of a run's input."""
        return self._input.json_schema()

    def admit(self, fn: Admission) -> Admission:
        """Declare a check `fn(state, tools)` run at submission, with the run's tools, before any stage.

        It raises `NotFound` or `InvalidRequest` for input the server can already tell will fail
        (a database or index that is not registered), so the client hears it at `POST`.
        """
        self._admission.append(fn)
        return fn

    def check_admission(self, value: Any, tools: Mapping[str, Any]) -> None:
        """Run the declared admission checks on a validated input."""
        for fn in self._admission:
            fn(value, tools)

    @property
    def stage_names(self) -> list[str]:
        """The stages in declaration order."""
        return list(self.stages)

    # --- the expected path, for budgets -----------------------------------------------------

    @property
    def planner(self) -> BudgetPlanner:
        """The budget planner for this definition."""
        if self._planner is None:
            costs = {n: s.cost.expected_s(self.speed) for n, s in self.stages.items()}
            self._planner = BudgetPlanner(costs, self.expected_after)
        return self._planner

    def expected_after(self, stage: str, loops: Mapping[str, int]) -> Iterator[str]:
        """Stages expected after `stage`, given how often each loop has gone round so far."""
        taken = dict(loops)
        current = stage
        # Every cycle passes a loop that stops after max_times, so this walk ends; the guard is
        # for definitions that were never validated.
        for _ in range(len(self.stages) * (1 + sum(lp.max_times for lp in self.loops.values()))):
            loop = self.loops.get(current)
            if loop is not None and taken.get(current, 0) < loop.expected:
                taken[current] = taken.get(current, 0) + 1
                current = loop.back_to
            elif current in self.branches:
                current = self.branches[current].expected
            elif current in self.edges:
                current = self.edges[current]
            else:
                return
            yield current

    # --- LangGraph ------------------------------------------------------------------------

    def graph(self) -> StateGraph:
        """The uncompiled LangGraph `StateGraph`, to extend before compiling it yourself."""
        self.validate()
        return build_graph(self)

    def compile(self, checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
        """The compiled LangGraph graph; runnable on its own (no deadline, no LLM bound)."""
        graph = self.graph()
        if checkpointer is not None:
            checkpointer = allow_state_types(checkpointer, graph)
        return graph.compile(checkpointer=checkpointer, name=self.name)

    @staticmethod
    def from_graph(
        name: str, graph: Any, *, state: Any = None, slo: float | None = None, description: str = ""
    ) -> GraphWorkflow:
        """An existing compiled LangGraph graph as a workflow, to register and run like any other."""
        return GraphWorkflow(name, graph, state=state, slo=slo, description=description)

    # --- internals -------------------------------------------------------------------------

    def name_of(self, ref: StageRef | None, where: str) -> str:
        """The name of a stage given by name or function; `ConfigError` if it is not one."""
        name = ref if isinstance(ref, str) else self._names.get(ref)  # type: ignore[arg-type]
        if name is None or name not in self.stages:
            shown = ref if isinstance(ref, str) else getattr(ref, "__name__", repr(ref))
            raise ConfigError(f"{where}: {shown!r} is not a stage of workflow {self.name!r}; declare it with .stage first")
        return name

    def _check_free(self, src: str) -> None:
        if src in self.edges or src in self.branches:
            nxt = self.edges.get(src) or f"branch {list(self.branches[src].options)}"
            raise ConfigError(f"stage {src!r} already continues to {nxt}; a stage has one way out")

    def _set_next(self, src: str, dst: str) -> None:
        if self.edges.get(src) == dst:
            return
        self._check_free(src)
        self.edges[src] = dst
        self._planner = None

    def _successors(self, stage: str, *, with_loops: bool) -> list[str]:
        out = list(self.branches[stage].options) if stage in self.branches else []
        if stage in self.edges:
            out.append(self.edges[stage])
        if with_loops and stage in self.loops:
            out.append(self.loops[stage].back_to)
        return out

    def _unbounded_cycle(self) -> list[str] | None:
        """A cycle that does not pass a loop's way back, as [a, b, ..., a], or None."""
        colour: dict[str, int] = {}
        path: list[str] = []

        def visit(stage: str) -> list[str] | None:
            colour[stage] = 1
            path.append(stage)
            for nxt in self._successors(stage, with_loops=False):
                if colour.get(nxt) == 1:
                    return path[path.index(nxt):] + [nxt]
                if nxt not in colour and (found := visit(nxt)):
                    return found
            path.pop()
            colour[stage] = 2
            return None

        for stage in self.stages:
            if stage not in colour and (found := visit(stage)):
                return found
        return None
