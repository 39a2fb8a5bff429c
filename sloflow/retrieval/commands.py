"""CLI commands for retrieval: `sloflow ingest` and `sloflow db add | list | schema`.

The retrieval stack (torch, FAISS, Chroma) is imported inside the commands, so that wiring them
into the `sloflow` app does not slow down its other commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from sloflow.errors import SloflowError

db_app = typer.Typer(help="SQL databases that workflows may query (read-only, guarded).", no_args_is_help=True)


def _fail(exc: SloflowError) -> None:
    typer.secho(f"error: {exc.message}", fg="red", err=True)
    raise typer.Exit(2)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders (.txt .md .jsonl .html)")],
    index: Annotated[str, typer.Option("--index", help="index name; created if it does not exist")],
    store: Annotated[str, typer.Option(help="for a new index: faiss or chroma")] = "faiss",
    faiss_kind: Annotated[str, typer.Option(help="for a new FAISS index: flat, hnsw or ivf")] = "hnsw",
    chunk_size: Annotated[int, typer.Option(help="for a new index: words per chunk")] = 200,
    chunk_overlap: Annotated[int, typer.Option(help="for a new index: words shared by neighbouring chunks")] = 20,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="default: only on a terminal")] = None,
) -> None:
    """Ingest documents into an index; unchanged documents are skipped, changed ones replaced."""
    from sloflow.retrieval.document_index import IndexConfig
    from sloflow.retrieval.ingest import ingest_paths
    from sloflow.retrieval.sources import default_sources

    try:
        indexes = default_sources().indexes
        if index in indexes.names():
            target = indexes.get(index)
        else:
            config = IndexConfig(store=store, faiss_kind=faiss_kind, chunk_size=chunk_size, chunk_overlap=chunk_overlap)  # type: ignore[arg-type]
            target = indexes.create(index, config)
        report = ingest_paths(target, paths, progress=progress)
    except SloflowError as exc:
        _fail(exc)
    typer.echo(
        f"{index}: {report.added} added, {report.replaced} replaced, {report.unchanged} unchanged, "
        f"{report.chunks} chunks written; {len(target)} chunks in the index"
    )


@db_app.command("add")
def db_add(
    name: Annotated[str, typer.Argument(help="name workflows use for it")],
    url: Annotated[str, typer.Argument(help="sqlite:////abs/path.db, duckdb:////abs/x.duckdb or a file path")],
    timeout_s: Annotated[float, typer.Option(help="queries running longer are interrupted")] = 5.0,
    max_rows: Annotated[int, typer.Option(help="the LIMIT every query gets at most")] = 1000,
    replace: Annotated[bool, typer.Option(help="replace a database of the same name")] = False,
) -> None:
    """Register a database (its schema is read now)."""
    from sloflow.retrieval.sources import default_sources

    try:
        db = default_sources().databases.add(name, url, timeout_s, max_rows, replace=replace)
    except SloflowError as exc:
        _fail(exc)
    typer.echo(f"{name}: {db.engine} {db.path}, {len(db.tables)} tables")


@db_app.command("list")
def db_list() -> None:
    """The registered databases."""
    from sloflow.retrieval.sources import default_sources

    registry = default_sources().databases
    for name in registry.names():
        try:
            db = registry.get(name)
        except SloflowError as exc:
            typer.echo(f"{name:24} unavailable: {exc.message}")
            continue
        typer.echo(f"{name:24} {db.engine:7} {len(db.tables):3} tables  {db.path}")


@db_app.command("schema")
def db_schema(
    name: Annotated[str, typer.Argument(help="a registered database")],
    as_json: Annotated[bool, typer.Option("--json", help="the full schema with sample values as JSON")] = False,
) -> None:
    """Tables, columns, types and keys of a database."""
    from sloflow.retrieval.sources import default_sources

    try:
        db = default_sources().databases.get(name)
    except SloflowError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(db.describe(), indent=2, default=str))
        return
    for table in db.tables:
        typer.echo(table.describe())
