"""FAISS (flat, HNSW, IVF), Chroma and BM25 stores behind one interface, and RRF hybrid search."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sloflow.processes import stop
from sloflow.retrieval.bm25_store import Bm25Store
from sloflow.retrieval.chroma_store import ChromaStore, chroma_client
from sloflow.retrieval.chunking import Chunk
from sloflow.retrieval.embedder import Embedder
from sloflow.retrieval.faiss_store import FaissStore
from sloflow.retrieval.hybrid import HybridIndex, reciprocal_rank_fusion
from sloflow.retrieval.index import Index, SearchHit
from tests.conftest import free_port

FACTS = {
    "paris": ("The Eiffel Tower stands in Paris, the capital of France.", "geo"),
    "python": ("Python is a programming language created by Guido van Rossum.", "tech"),
    "tea": ("Green tea is brewed from the leaves of Camellia sinensis.", "food"),
    "faiss": ("FAISS is a library for similarity search over dense vectors.", "tech"),
    "nile": ("The Nile is a major river flowing north through Egypt.", "geo"),
    "bread": ("Sourdough bread rises with wild yeast and lactic acid bacteria.", "food"),
}
CHUNKS = [Chunk(doc, 0, text, {"topic": topic}) for doc, (text, topic) in FACTS.items()]


@pytest.fixture(scope="module")
def vectors(embedder: Embedder) -> np.ndarray:
    return embedder.embed([c.text for c in CHUNKS])


def _stores(embedder: Embedder, tmp_path: Path) -> list[Index]:
    return [
        FaissStore("facts", embedder, kind="flat"),
        FaissStore("facts", embedder, kind="hnsw"),
        FaissStore("facts", embedder, kind="ivf"),
        ChromaStore("facts", embedder, chroma_client(tmp_path / "chroma")),
    ]


def test_embeddings_are_unit_length_and_batched_like_single_calls(embedder: Embedder, vectors: np.ndarray) -> None:
    assert vectors.shape == (len(CHUNKS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(embedder.embed_one(CHUNKS[2].text), vectors[2], atol=1e-5)


def test_every_dense_store_finds_the_right_chunk_filters_and_deletes(embedder: Embedder, vectors: np.ndarray, tmp_path: Path) -> None:
    for store in _stores(embedder, tmp_path):
        assert isinstance(store, Index)
        store.add(CHUNKS, vectors)
        assert len(store) == len(CHUNKS)
        top = store.search("Which river runs through Egypt?", k=3)
        assert top[0].doc_id == "nile", store
        assert top[0].store == store.store and top[0].index == "facts" and top[0].metadata == {"topic": "geo"}
        assert top[0].score > top[1].score
        assert {h.doc_id for h in store.search("a programming tool", k=10, where={"topic": "tech"})} == {"python", "faiss"}
        assert {h.doc_id for h in store.search("anything", k=10, where={"topic": ["food", "geo"]})} == {"tea", "bread", "paris", "nile"}
        store.delete(["nile"])
        assert len(store) == len(CHUNKS) - 1
        assert "nile" not in {h.doc_id for h in store.search("Which river runs through Egypt?", k=3)}


def test_faiss_store_round_trips_through_disk(embedder: Embedder, vectors: np.ndarray, tmp_path: Path) -> None:
    store = FaissStore("facts", embedder, kind="hnsw")
    store.add(CHUNKS, vectors)
    store.delete(["tea"])
    path = tmp_path / "dense.faiss"
    store.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["dense.faiss"]  # no temporary file left
    loaded = FaissStore.load(path, "facts", embedder)
    assert len(loaded) == len(CHUNKS) - 1 and loaded.kind == "hnsw"
    query = embedder.embed(["How is bread leavened?"])
    assert [h.chunk_id for h in loaded.search_vectors(query, 3)[0]] == [h.chunk_id for h in store.search_vectors(query, 3)[0]]


def test_hnsw_compacts_when_deletions_outnumber_live_chunks(embedder: Embedder, vectors: np.ndarray) -> None:
    store = FaissStore("facts", embedder, kind="hnsw")
    store.add(CHUNKS, vectors)
    store.delete(["paris", "python", "tea", "faiss"])
    assert len(store) == 2
    assert {h.doc_id for h in store.search("anything", k=10)} == {"nile", "bread"}


def test_chroma_collection_persists_across_clients(embedder: Embedder, vectors: np.ndarray, tmp_path: Path) -> None:
    ChromaStore("facts", embedder, chroma_client(tmp_path / "c")).add(CHUNKS, vectors)
    again = ChromaStore("facts", embedder, chroma_client(tmp_path / "c"))
    assert len(again) == len(CHUNKS)
    assert again.search("tallest landmark in the French capital", k=1)[0].doc_id == "paris"


def test_bm25_matches_keywords_and_ignores_chunks_without_them() -> None:
    store = Bm25Store("facts")
    store.add(CHUNKS)
    hits = store.search("wild yeast sourdough", k=5)
    assert [h.doc_id for h in hits] == ["bread"] and hits[0].store == "bm25"
    assert store.search("the and of", k=5) == []
    assert store.search("Python", k=5, where={"topic": "food"}) == []
    store.delete(["bread"])
    assert store.search("sourdough", k=5) == []


def _hit(cid: str) -> SearchHit:
    return SearchHit(f"{cid}#0", cid, 0, cid, 0.0, {}, "i", "x")


def test_rrf_rewards_agreement_and_keeps_each_rank() -> None:
    fused = reciprocal_rank_fusion({"dense": [_hit("a"), _hit("b"), _hit("c")], "bm25": [_hit("b"), _hit("c")]}, k=3)
    assert [h.doc_id for h in fused] == ["b", "c", "a"]
    assert fused[0].ranks == {"dense": 2, "bm25": 1} and fused[2].ranks == {"dense": 1}
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61) and fused[0].store == "hybrid"


def test_hybrid_search_finds_what_either_retriever_finds(embedder: Embedder, vectors: np.ndarray) -> None:
    hybrid = HybridIndex(FaissStore("facts", embedder, kind="flat"), Bm25Store("facts"))
    hybrid.add(CHUNKS, vectors)
    hits = hybrid.search("Camellia sinensis", k=2)
    assert hits[0].doc_id == "tea" and set(hits[0].ranks) == {"faiss-flat", "bm25"}
    assert [h.doc_id for h in hybrid.search("Guido", k=3, where={"topic": "tech"})][0] == "python"


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    binary = Path(sys.executable).parent / "chroma"
    if not binary.exists():
        pytest.skip("the chroma CLI (from chromadb) is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                chroma_client(url).heartbeat()
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        stop(proc, timeout_s=10)


def test_a_chroma_server_is_reached_by_url(embedder: Embedder, vectors: np.ndarray, chroma_server: str) -> None:
    ChromaStore("facts", embedder, chroma_client(chroma_server)).add(CHUNKS, vectors)
    remote = ChromaStore("facts", embedder, chroma_client(chroma_server))
    assert len(remote) == len(CHUNKS)
    assert remote.search("brewing leaves", k=1, where={"topic": "food"})[0].doc_id == "tea"
