"""Retrieval tools for workflow stages: document indexes, hybrid search, guarded SQL, semantic cache.

Stages call `sloflow.retrieval.sources.retrieve(source, query, k)` and `run_sql(db, sql)` (bound
as `ctx.retrieve` / `ctx.sql`); the REAPER planner lists and calls sources through
`SourceRegistry`. Nothing is imported here, so that `import sloflow.retrieval.commands` (the CLI)
does not load torch, FAISS and Chroma.
"""
