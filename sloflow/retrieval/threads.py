"""How many threads one search or embedding may fan out to: one for a single query.

In production llama.cpp workers keep every core busy. An OpenMP team started for one query then
waits for cores that inference holds: a 10k-key HNSW lookup took 8 ms with FAISS's default
threads beside one busy core, and 0.57 ms on one thread. Batches (index builds, bulk embedding,
benchmark sweeps) still gain from every core, so the choice is made per call, here only.

OpenMP's thread count is a per-thread setting (libgomp keeps it in the calling thread's state),
and searches run in `asyncio.to_thread` workers, so it is set in the thread that searches, on
every call; the call costs well under a microsecond.
"""

from __future__ import annotations

import os

import faiss

# Queries (or texts) up to this many are "single": not worth a thread team.
SINGLE_QUERY_MAX = 4
_ALL_CORES = max(os.cpu_count() or 1, 1)


def threads_for(queries: int) -> int:
    """Threads a search or embedding of `queries` items may use."""
    return 1 if queries <= SINGLE_QUERY_MAX else _ALL_CORES


def faiss_threads(queries: int) -> None:
    """Set FAISS's OpenMP threads in this thread for a search of `queries` queries."""
    faiss.omp_set_num_threads(threads_for(queries))


def torch_threads(texts: int) -> None:
    """Set torch's intra-op threads for embedding `texts` texts (called with torch loaded)."""
    import torch

    wanted = threads_for(texts)
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
