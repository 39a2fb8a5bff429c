"""The `sloflow` console script."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from sloflow.config import get_settings
from sloflow.errors import SloflowError
from sloflow.logs import setup_from_settings, setup_logging

app = typer.Typer(help="sloflow: agentic LLM workflows under latency SLOs.", no_args_is_help=True)

BENCHMARKS = {
    "api": "sloflow.bench.api",
    "backends": "sloflow.bench.backends",
    "runtime": "sloflow.bench.runtime",
    "scheduler": "sloflow.bench.scheduler",
    "retrieval": "sloflow.bench.retrieval",
    "cache": "sloflow.bench.cache",
    "text2sql": "sloflow.bench.text2sql",
    "reaper": "sloflow.bench.reaper",
    "sleeptime": "sloflow.bench.sleeptime",
    "stream-rag": "sloflow.bench.stream_rag",
    "gates": "sloflow.bench.gates",
}


def _fail(exc: SloflowError) -> None:
    typer.secho(f"error: {exc.message}", fg="red", err=True)
    raise typer.Exit(2)


@app.command()
def serve(
    model: Annotated[Optional[str], typer.Option(help="embedded model name or .gguf path")] = None,
    host: Annotated[Optional[str], typer.Option(help="bind address (default from settings: 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port (default from settings: 8000)")] = None,
    workers: Annotated[
        Optional[Path],
        typer.Option(help="a YAML or JSON workers file: per worker its backend, model, threads, slots and Ray resources"),
    ] = None,
    load: Annotated[
        Optional[list[str]], typer.Option("--load", help="a module or .py file that registers workflows (repeatable)")
    ] = None,
) -> None:
    """Serve the REST API: local Ray, LLM worker actors behind the scheduler, workflows; until Ctrl-C."""
    from sloflow.api import serve as serving

    try:
        setup_from_settings()
        settings = get_settings()
        host = host or settings.host
        port = port or settings.port
        model = model or settings.model
        url = f"http://{host}:{port}"
        example = {"messages": [{"role": "user", "content": "Write a SQL query that counts the rows of table orders."}], "max_tokens": 64}
        auth_header = ""

        def announce_key(key: str | None, path: object) -> None:
            nonlocal auth_header
            auth_header = f" -H \"Authorization: Bearer $(cat {path})\""
            if key is not None:
                typer.echo(f"created the local admin key (kept in {path}, shown once):\n  {key}")
            else:
                typer.echo(f"the local admin key is in {path}")

        def announce(line: str) -> None:
            typer.echo(line)
            if line.startswith("sloflow serving"):
                typer.echo("try:")
                typer.echo(
                    f"  curl -s {url}/v1/chat/completions{auth_header} -H 'Content-Type: application/json' \\\n    -d '{json.dumps(example)}'"
                )
                question = {"input": {"question": "Which country has the most customers?", "db": "shop"}}
                typer.echo(
                    f"  curl -s '{url}/v1/workflows/text2sql/runs?wait=true'{auth_header} -H 'Content-Type: application/json' \\\n"
                    f"    -d '{json.dumps(question)}'"
                )

        from sloflow.workflows.registry import load as load_workflows

        for source in load or []:
            load_workflows(source)
        serving.run(serving.serve(settings, model, host, port, announce, announce_key, workers_file=workers))
    except SloflowError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        pass


@app.command()
def node(
    address: Annotated[str, typer.Option(help="the Ray head on this machine, e.g. 127.0.0.1:6379")],
    num_cpus: Annotated[Optional[int], typer.Option(help="CPUs the node offers (default: all)")] = None,
    num_gpus: Annotated[Optional[int], typer.Option(help="GPUs the node offers (default: those detected)")] = None,
    resources: Annotated[str, typer.Option(help='custom resources as JSON, e.g. \'{"accelerator_type:T4": 1}\'')] = "{}",
) -> None:
    """Add a Ray node on this machine to a loopback head, every port on 127.0.0.1; until Ctrl-C or SIGTERM.

    `ray start --address` refuses a second node while Ray is kept on loopback; this starts the same node.
    """
    import signal
    import time

    from sloflow.ray_start import start_node

    try:
        custom = json.loads(resources)
        if not isinstance(custom, dict) or not all(isinstance(v, (int, float)) and v > 0 for v in custom.values()):
            raise ValueError
    except ValueError:
        typer.secho(f"error: --resources must be a JSON object of positive amounts, not {resources!r}", fg="red", err=True)
        raise typer.Exit(2) from None
    try:
        started = start_node(address, num_cpus=num_cpus, num_gpus=num_gpus, resources=custom)
    except SloflowError as exc:
        _fail(exc)
    typer.echo(f"sloflow node {started.node_id} joined the Ray head at {address} (127.0.0.1 only); Ctrl-C stops it")
    # Ray's own SIGTERM handler first waits up to 30 s for the node to drain, which a node holding
    # LLM workers never does; stop at once instead: the dispatcher re-dispatches their calls.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while not started.dead_processes():
            time.sleep(1)
        typer.secho(f"error: Ray processes of this node exited: {started.dead_processes()}", fg="red", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        started.kill_all_processes(check_alive=False, allow_graceful=True, wait=True)


@app.command()
def models(
    prepare: Annotated[Optional[str], typer.Option(help="assemble and verify this model now")] = None,
) -> None:
    """List the embedded models and whether they are installed."""
    from sloflow.llm.models import EMBEDDED_MODELS, is_available, model_path

    settings = get_settings()
    if prepare:
        try:
            typer.echo(str(model_path(prepare, settings.home / "models")))
        except SloflowError as exc:
            _fail(exc)
        return
    for m in EMBEDDED_MODELS.values():
        state = "installed" if is_available(m.name) else "not installed"
        typer.echo(f"{m.name:20} {state:14} {m.source}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def bench(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help=f"one of: {', '.join(BENCHMARKS)}", show_default=False)] = None,
    quick: Annotated[bool, typer.Option(help="a short run with the same fields")] = False,
) -> None:
    """Run a benchmark: progress on stderr, one final JSON line on stdout. `sloflow bench NAME --help` lists its options."""
    asked_help = any(a in ("--help", "-h") for a in ctx.args) or name in ("--help", "-h")
    if name is None or name in ("--help", "-h"):
        typer.echo(ctx.get_help())
        raise typer.Exit(0 if asked_help else 2)
    if name not in BENCHMARKS:
        typer.secho(f"error: unknown benchmark {name!r}; use one of {sorted(BENCHMARKS)}", fg="red", err=True)
        raise typer.Exit(2)
    module = importlib.import_module(BENCHMARKS[name])
    if asked_help:  # the benchmark's own options come from its parser; --quick is the command's
        typer.echo("  --quick    a short run with the same fields\n")
        module.main(quick=quick, args=["--help"])  # argparse prints its usage and exits
        return
    try:
        setup_logging("WARNING", get_settings().log_format)
        figures = module.main(quick=quick, args=list(ctx.args))
    except SloflowError as exc:
        _fail(exc)
    sys.stdout.write(json.dumps(figures) + "\n")


from sloflow.api import commands as key_commands  # noqa: E402
from sloflow.retrieval import commands as retrieval_commands  # noqa: E402
from sloflow.scheduler.sim import commands as scheduler_commands  # noqa: E402
from sloflow.workflows import commands as workflow_commands  # noqa: E402

app.add_typer(workflow_commands.app)
app.command("sim")(scheduler_commands.sim)
app.command("tune")(scheduler_commands.tune)
app.command("ingest")(retrieval_commands.ingest)
app.add_typer(retrieval_commands.db_app, name="db")
app.add_typer(key_commands.keys_app, name="keys")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
