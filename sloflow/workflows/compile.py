"""Turns a `Workflow` into a LangGraph `StateGraph`: one node per stage, edges, `Send` fan-outs.

Each node wraps its stage: it stops if the run was cancelled, computes the stage's budget,
builds the `StageContext`, applies retry and timeout, and records stage events. Loop bounds are
enforced from a counter kept in the checkpointed state, so a resumed run counts correctly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, TypedDict, get_type_hints, is_typeddict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send
from pydantic import BaseModel, Field, create_model

from sloflow.errors import Cancelled, ConfigError, DeadlineExceeded
from sloflow.logs import log_fields
from sloflow.workflows.context import RunScope, StageContext
from sloflow.workflows.records import error_dict
from sloflow.workflows.stages import Stage
from sloflow.workflows.state import read_field

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from sloflow.workflows.dsl import Workflow  # annotations only: dsl imports this module

# The state key that counts how often each loop's last stage has run (see `_with_visits`).
VISITS = "sloflow_visits"
_NO_RUN = RunScope()  # the graph was invoked directly, outside a runtime: no deadline, no LLM


def _add_visits(old: dict[str, int] | None, new: dict[str, int] | None) -> dict[str, int]:
    out = dict(old or {})
    for stage, n in (new or {}).items():
        out[stage] = out.get(stage, 0) + n
    return out


def build_graph(wf: Workflow) -> StateGraph:
    """The LangGraph graph of a validated workflow."""
    state = _with_visits(wf.state) if wf.loops else wf.state
    graph = StateGraph(state, context_schema=RunScope, input_schema=wf.state, output_schema=wf.state)
    for stage in wf.stages.values():
        graph.add_node(stage.name, _node(wf, stage))
    assert wf.entry is not None
    _connect(graph, wf, START, wf.entry)
    for name in wf.stages:
        if name in wf.loops:
            _add_loop(graph, wf, name)
        elif name in wf.branches:
            _add_branch(graph, wf, name)
        else:
            _connect(graph, wf, name, wf.edges.get(name, END))
    return graph


def _with_visits(schema: type) -> type:
    """The user's state plus the loop counter, which stages never need to see or declare."""
    counter = Annotated[dict[str, int], _add_visits]
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return create_model(schema.__name__, __base__=schema, **{VISITS: (counter, Field(default_factory=dict))})
    if is_typeddict(schema):
        fields = {**get_type_hints(schema, include_extras=True), VISITS: counter}
        return TypedDict(schema.__name__, fields, total=False)  # type: ignore[operator]
    raise ConfigError(f"state of a workflow must be a pydantic model or a TypedDict, got {schema!r}")


def _goto(wf: Workflow, target: str, state: Any) -> str | list[Send]:
    """Where to go next: a stage name, or one `Send` per item of a fan-out stage."""
    stage = wf.stages.get(target)
    if stage is None or stage.fan_out is None:
        return target
    items = stage.items(state)
    if not items:  # nothing to fan out over: go straight on to what follows the fan-out
        return _goto(wf, wf.edges.get(target, END), state)
    loops = read_field(state, VISITS) or {}
    # The fan-out stage sees the user's own state class (the loop counter travels beside it).
    plain = _plain_state(wf.state, state)
    return [Send(target, {"state": plain, "item": item, "index": i, "loops": loops}) for i, item in enumerate(items)]


def _plain_state(schema: type, state: Any) -> Any:
    if isinstance(state, BaseModel) and type(state) is not schema:
        return schema.model_construct(**{k: getattr(state, k) for k in schema.model_fields})  # type: ignore[attr-defined]
    if isinstance(state, Mapping) and VISITS in state:
        return {k: v for k, v in state.items() if k != VISITS}
    return state


def _connect(graph: StateGraph, wf: Workflow, src: str, dst: str) -> None:
    if dst in wf.stages and wf.stages[dst].fan_out is not None:
        graph.add_conditional_edges(src, lambda s: _goto(wf, dst, s), _targets(wf, (dst,)))
    else:
        graph.add_edge(src, dst)


def _add_branch(graph: StateGraph, wf: Workflow, name: str) -> None:
    branch = wf.branches[name]

    def route(state: Any) -> Hashable | list[Send]:
        target = wf.name_of(branch.choose(state), f"the branch after {name!r}")
        if target not in branch.options:
            raise ConfigError(f"the branch after {name!r} chose {target!r}, which is not one of {list(branch.options)}")
        return _goto(wf, target, state)

    graph.add_conditional_edges(name, route, _targets(wf, branch.options))


def _add_loop(graph: StateGraph, wf: Workflow, name: str) -> None:
    loop = wf.loops[name]
    exit_to = wf.edges.get(name, END)

    def route(state: Any) -> Hashable | list[Send]:
        gone_round = (read_field(state, VISITS) or {}).get(name, 1) - 1
        if gone_round < loop.max_times and loop.while_(state):
            return _goto(wf, loop.back_to, state)
        return _goto(wf, exit_to, state)

    graph.add_conditional_edges(name, route, _targets(wf, (loop.back_to, exit_to)))


def _targets(wf: Workflow, names: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for n in names:
        out.append(n)
        if n in wf.stages and wf.stages[n].fan_out is not None:
            out.append(wf.edges.get(n, END))  # where an empty fan-out goes
    return list(dict.fromkeys(out))


def _node(wf: Workflow, stage: Stage) -> Callable[..., Any]:
    """The LangGraph node that runs `stage` inside its run."""
    name = stage.name
    planner = wf.planner
    fans_out = stage.fan_out is not None
    has_loops = bool(wf.loops)
    ends_loop = name in wf.loops
    plain = not fans_out and stage.retry is None and stage.timeout_s is None  # the common, fast path

    async def node(state: Any, runtime: Runtime[RunScope]) -> Mapping[str, Any]:
        scope = runtime.context or _NO_RUN
        scope.check_cancelled(name)
        if fans_out:
            item, index, loops, state = state["item"], state["index"], state["loops"], state["state"]
        else:
            item, index = None, None
            loops = (read_field(state, VISITS) or {}) if has_loops else {}
        started = time.time()
        budget = planner.budget(name, loops, started, scope.deadline)
        ctx = StageContext(scope, name, budget)
        facts: dict[str, Any] = {"budget_s": budget} if index is None else {"budget_s": budget, "index": index}
        scope.emit("stage_started", name, facts)
        try:
            with log_fields(run_id=scope.run_id or None, workflow=scope.workflow or None, stage=name):
                if plain:
                    update, attempts = _checked(name, await stage.fn(state, ctx)), 1
                else:
                    update, attempts = await _attempts(stage, state, ctx, item, scope)
        except BaseException as exc:
            scope.emit("stage_failed", name, {**facts, "duration_s": time.time() - started, "error": error_dict(exc)})
            if not isinstance(exc, (asyncio.CancelledError, Cancelled)):
                log.warning("stage failed: %s", exc, extra={"run_id": scope.run_id, "workflow": scope.workflow, "stage": name})
            raise
        scope.emit("stage_finished", name, {**facts, "started_at": started, "duration_s": time.time() - started, "attempts": attempts})
        if ends_loop:
            update = {**update, VISITS: {name: 1}}
        return update

    node.__name__ = name
    return node


async def _attempts(stage: Stage, state: Any, ctx: StageContext, item: Any, scope: RunScope) -> tuple[Mapping[str, Any], int]:
    """Run the stage with its timeout, retrying per its `Retry`; return (update, attempts)."""
    retry = stage.retry
    attempts = retry.attempts if retry else 1
    for attempt in range(1, attempts + 1):
        try:
            call = stage.fn(state, ctx) if stage.fan_out is None else stage.fn(state, ctx, item)
            if stage.timeout_s is None:
                update = await call
            else:
                async with asyncio.timeout(stage.timeout_s):
                    update = await call
            return _checked(stage.name, update), attempt
        except (Cancelled, DeadlineExceeded):
            raise  # neither goes away by trying again
        except Exception as exc:
            if retry is None or attempt == attempts or not isinstance(exc, retry.on) or scope.cancelled:
                if isinstance(exc, TimeoutError) and stage.timeout_s is not None:
                    raise DeadlineExceeded(
                        f"stage {stage.name!r} did not finish within its {stage.timeout_s}s timeout "
                        f"({attempt} attempt{'s' if attempt > 1 else ''})"
                    ) from None
                raise
            pause = retry.backoff_s * retry.factor ** (attempt - 1)
            scope.emit("stage_retry", stage.name, {"attempt": attempt, "error": error_dict(exc), "pause_s": pause})
            await asyncio.sleep(pause)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _checked(name: str, update: Any) -> Mapping[str, Any]:
    if update is None:
        return {}
    if not isinstance(update, Mapping):
        raise ConfigError(f"stage {name!r} returned {type(update).__name__}; a stage returns a dict of state updates or None")
    return update
