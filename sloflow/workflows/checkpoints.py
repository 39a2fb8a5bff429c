"""LangGraph checkpointers by URL: SQLite by default, Postgres for several API replicas.

Checkpoints restore only the types a workflow's state declares (LangGraph's strict msgpack mode,
which it plans to make the default): a checkpoint database is not a place to load arbitrary
classes from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import StateGraph

from sloflow.errors import ConfigError
from sloflow.workflows.sqlite_disk import sqlite_target


def _strict() -> JsonPlusSerializer:
    return JsonPlusSerializer(allowed_msgpack_modules=None)


@asynccontextmanager
async def open_checkpointer(url: str | Path) -> AsyncIterator[BaseCheckpointSaver | None]:
    """A checkpointer for `url`: a SQLite path or `sqlite:///path`, `postgresql://...`, `memory` or `none`."""
    target = str(url)
    if target == "none":
        yield None
    elif target == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver(serde=_strict())
    elif target.startswith(("postgresql://", "postgres://")):
        try:
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        except ImportError:
            raise ConfigError("a Postgres checkpointer needs the postgres extra: pip install 'sloflow[postgres]'") from None
        async with AsyncPostgresSaver.from_conn_string(target, serde=_strict()) as saver:
            await saver.setup()
            yield saver
    else:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        # On a read-only disk the run store refuses new runs, so nothing writes checkpoints; the
        # ones there can still be read.
        connect_to, read_only = sqlite_target(Path(target.removeprefix("sqlite:///")), "the checkpoint store")
        async with aiosqlite.connect(connect_to, uri=read_only) as conn:
            saver = AsyncSqliteSaver(conn, serde=_strict())
            await saver.setup()  # its CREATE IF NOT EXISTS and WAL pragma write nothing to a set-up file
            yield saver


def allow_state_types(checkpointer: BaseCheckpointSaver, graph: StateGraph) -> BaseCheckpointSaver:
    """`checkpointer`, allowed to restore the types the graph's state schemas name."""
    # LangGraph's own collector (what its strict mode runs at compile time), so nested models,
    # enums and dataclasses are found the same way.
    from langgraph._internal._serde import build_serde_allowlist

    schemas = [graph.state_schema, graph.input_schema, graph.output_schema]
    schemas += [node.input_schema for node in graph.nodes.values()]
    return checkpointer.with_allowlist(build_serde_allowlist(schemas=schemas, channels=graph.channels))
