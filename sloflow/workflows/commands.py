"""`sloflow workflows` and `sloflow run`: list the registered workflows, run one and watch it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Optional

import typer

from sloflow.config import Settings, get_settings
from sloflow.errors import SloflowError
from sloflow.llm.backend import Backend
from sloflow.llm.client import CallContext, DirectClient
from sloflow.llm.types import Chunk, Completion, GenerateRequest
from sloflow.workflows.builtin import load_builtins
from sloflow.workflows.records import Event, RunStatus
from sloflow.workflows.registry import load, workflows

app = typer.Typer(help="Workflows: list them and run one.")

Load = Annotated[
    Optional[list[str]],
    typer.Option("--load", help="a module or .py file that registers workflows (repeatable)"),
]


def _fail(exc: SloflowError) -> None:
    typer.secho(f"error: {exc.message}", fg="red", err=True)
    raise typer.Exit(2)


def _load(sources: list[str] | None) -> None:
    load_builtins()
    for source in sources or []:
        load(source)


@app.command("workflows")
def list_workflows(load_: Load = None) -> None:
    """List the registered workflows with their stages and default SLO."""
    try:
        _load(load_)
    except SloflowError as exc:
        _fail(exc)
    if not len(workflows):
        typer.echo("no workflows registered (add some with --load FILE.py)")
    for wf in workflows:
        slo = f"slo {wf.slo:g}s" if wf.slo is not None else "background"
        typer.echo(f"{wf.name:16} {slo:14} stages: {', '.join(wf.stage_names)}")
        if wf.description:
            typer.echo(f"{'':16} {wf.description}")


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="the workflow to run")],
    input_: Annotated[str, typer.Option("--input", help="the run's input as a JSON object")] = "{}",
    slo: Annotated[Optional[float], typer.Option(help="seconds; default: the workflow's own SLO")] = None,
    load_: Load = None,
) -> None:
    """Run a workflow: progress on stderr, then the result as JSON on stdout."""
    try:
        data = json.loads(input_)
    except json.JSONDecodeError as exc:
        typer.secho(f"error: --input is not valid JSON: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    try:
        _load(load_)
        outcome = asyncio.run(_run(get_settings(), name, data, slo))
    except SloflowError as exc:
        _fail(exc)
    typer.echo(json.dumps(outcome, indent=2, default=str))
    if outcome["status"] != RunStatus.succeeded:
        raise typer.Exit(1)


async def _run(settings: Settings, name: str, data: Any, slo: float | None) -> dict[str, Any]:
    from sloflow.workflows.runtime import Runtime  # LangGraph loads only when a run starts

    client = _LazyClient(settings)
    try:
        async with Runtime.open(settings.home, client=client) as runtime:
            record = await runtime.start(name, data, slo=slo)
            async for event in runtime.follow(record.id):
                _show(event)
            done = runtime.get(record.id)
    finally:
        await client.close()
    return {
        "run_id": done.id,
        "status": done.status.value,
        "deadline_met": done.deadline_met,
        "output": done.output,
        "error": done.error,
    }


def _show(event: Event) -> None:
    if event.kind == "token":
        typer.echo(event.data.get("text", ""), nl=False, err=True)
        return
    where = f" {event.stage}" if event.stage else ""
    facts = {k: v for k, v in event.data.items() if v is not None and k != "started_at"}
    shown = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in facts.items())
    typer.echo(f"[{event.id}] {event.kind}{where}{': ' + shown if shown else ''}", err=True)


class _LazyClient:
    """A `DirectClient` on the configured backend, opened at the first call (a model load is slow)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._backend: Backend | None = None

    def _client(self) -> DirectClient:
        if self._backend is None:
            from sloflow.llm import open_backend

            self._backend = open_backend(self._settings)
        return DirectClient(self._backend)

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        return await self._client().generate(request, ctx)

    async def stream(self, request: GenerateRequest, ctx: CallContext) -> AsyncIterator[Chunk]:
        async with contextlib.aclosing(self._client().stream(request, ctx)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def close(self) -> None:
        if self._backend is not None:
            await self._backend.close()
