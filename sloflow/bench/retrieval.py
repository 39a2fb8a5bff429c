"""Retrieval: approximate-search recall and latency at scale, and answer-paragraph recall on HotpotQA.

Scale: a synthetic corpus of N chunks (100k; 10k with --quick), each two random HotpotQA sentences;
a chunk's vector is the normalised sum of its sentences' MiniLM embeddings (embedding 100k chunks
would take over 15 minutes on 2 cores). HNSW efSearch is tuned on one query set (train) to reach
--target-recall of exact search and reported on another (val: the real HotpotQA questions plus
fresh sentence pairs). Latency is per single query through the stores' own search calls, measured
twice: on a quiet machine and with an embedded model generating beside it (`*_busy`), since
inference keeps the cores busy wherever retrieval runs in production.

Quality: every HotpotQA paragraph is a document; recall@10 = the share of each question's
supporting paragraphs found among the top 10 documents, for dense (exact), BM25 and hybrid (RRF).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sloflow.bench.load import inference_load
from sloflow.bench.progress import say
from sloflow.retrieval.bm25_store import Bm25Store
from sloflow.retrieval.chroma_store import ChromaStore, chroma_client
from sloflow.retrieval.chunking import Chunk, Document, chunk_document
from sloflow.retrieval.embedder import get_embedder
from sloflow.retrieval.faiss_store import FaissStore
from sloflow.retrieval.hybrid import HybridIndex
from sloflow.retrieval.index import SearchHit

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hotpotqa" / "dev50.json"
EF_CHOICES = (16, 24, 32, 48, 64, 96, 112, 128, 160, 192, 256)


def _percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    return round(statistics.median(ordered), 3), round(ordered[int(0.95 * (len(ordered) - 1))], 3)


def _time_queries(search: Callable[[int], object], n: int) -> tuple[float, float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        search(i)
        samples.append((time.perf_counter() - start) * 1000)
    return _percentiles(samples)


def _recall(approx: list[list[SearchHit]], exact: list[list[SearchHit]], k: int = 10) -> float:
    return float(np.mean([len({h.chunk_id for h in a[:k]} & {h.chunk_id for h in e[:k]}) / k for a, e in zip(approx, exact)]))


def _paragraphs(questions: list[dict]) -> dict[str, str]:
    docs = {}
    for q in questions:
        for title, sentences in zip(q["context"]["title"], q["context"]["sentences"]):
            docs[title] = "".join(sentences)
    return docs


def answer_recall(questions: list[dict]) -> dict[str, float]:
    """Share of supporting paragraphs in the top 10 documents, per retriever."""
    embedder = get_embedder()
    paragraphs = _paragraphs(questions)
    chunks = [c for title, text in paragraphs.items() for c in chunk_document(Document(title, f"{title}. {text}"))]
    hybrid = HybridIndex(FaissStore("hotpot", embedder, kind="flat"), Bm25Store("hotpot"))
    hybrid.add(chunks)
    say(f"hotpotqa: {len(paragraphs)} paragraphs in {len(chunks)} chunks, {len(questions)} questions")
    retrievers: dict[str, Callable[[str], list[SearchHit]]] = {
        "dense": lambda q: hybrid.dense.search(q, 50),
        "bm25": lambda q: hybrid.sparse.search(q, 50),
        "hybrid": lambda q: hybrid.search(q, 50),
    }
    out = {}
    for name, search in retrievers.items():
        scores = []
        for q in questions:
            top_docs = list(dict.fromkeys(h.doc_id for h in search(q["question"])))[:10]
            gold = set(q["supporting_facts"]["title"])
            scores.append(len(gold & set(top_docs)) / len(gold))
        out[name] = round(float(np.mean(scores)), 4)
        say(f"  {name:6} answer-paragraph recall@10 = {out[name]:.3f}")
    return out


def _synthetic(sentences: list[str], vectors: np.ndarray, n: int, rng: np.random.Generator) -> tuple[list[Chunk], np.ndarray]:
    pairs = rng.integers(0, len(sentences), size=(n, 2))
    mixed = vectors[pairs[:, 0]] + vectors[pairs[:, 1]]
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    chunks = [Chunk(f"s{i}", 0, f"{sentences[a]} {sentences[b]}") for i, (a, b) in enumerate(pairs.tolist())]
    return chunks, np.ascontiguousarray(mixed, dtype=np.float32)


def scale(
    questions: list[dict], n: int, n_queries: int, target_recall: float, max_sentences: int, load_threads: int, seed: int = 0
) -> dict[str, float]:
    """Recall@10 against exact search, and single-query latency at n chunks quiet and beside inference."""
    embedder = get_embedder()
    rng = np.random.default_rng(seed)
    sentences = sorted({s.strip() for q in questions for para in q["context"]["sentences"] for s in para if len(s.split()) >= 4})
    sentences = [sentences[i] for i in sorted(rng.permutation(len(sentences))[:max_sentences])]
    say(f"scale: embedding {len(sentences)} HotpotQA sentences for a {n:,}-chunk synthetic corpus")
    vectors = embedder.embed(sentences)
    chunks, chunk_vectors = _synthetic(sentences, vectors, n, rng)
    train_q = _synthetic(sentences, vectors, n_queries, rng)[1]
    val_q = np.vstack([embedder.embed([q["question"] for q in questions]), _synthetic(sentences, vectors, n_queries, rng)[1]])
    texts = [q["question"] for q in questions]

    flat = FaissStore("synthetic", None, dim=embedder.dim, kind="flat")
    flat.add(chunks, chunk_vectors)
    exact_train = [flat.search_vectors(q[None, :], 10)[0] for q in train_q]
    exact_val = [flat.search_vectors(q[None, :], 10)[0] for q in val_q]
    figures: dict[str, float] = {}

    start = time.perf_counter()
    hnsw = FaissStore("synthetic", None, dim=embedder.dim, kind="hnsw", hnsw_m=32, ef_construction=200)
    hnsw.add(chunks, chunk_vectors)
    figures["hnsw_build_s"] = round(time.perf_counter() - start, 1)
    for ef in EF_CHOICES:
        hnsw.ef_search = ef
        train_recall = _recall([hnsw.search_vectors(q[None, :], 10)[0] for q in train_q], exact_train)
        say(f"  hnsw efSearch={ef}: train recall@10 {train_recall:.4f}")
        if train_recall >= target_recall:
            break
    figures["hnsw_ef_search"] = hnsw.ef_search
    figures["hnsw_recall_at_10"] = round(_recall([hnsw.search_vectors(q[None, :], 10)[0] for q in val_q], exact_val), 4)
    say(f"  faiss hnsw (M=32, fp16 vectors, efSearch={hnsw.ef_search}, built in {figures['hnsw_build_s']} s): val recall@10 {figures['hnsw_recall_at_10']}")

    sparse = Bm25Store("synthetic")
    sparse.add(chunks)
    hybrid = HybridIndex(hnsw, sparse)

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        chroma = ChromaStore("synthetic", None, chroma_client(Path(folder)))
        chroma.add(chunks, chunk_vectors)
        figures["chroma_build_s"] = round(time.perf_counter() - start, 1)
        figures["chroma_recall_at_10"] = round(_recall([chroma.search_vectors(q[None, :], 10)[0] for q in val_q], exact_val), 4)
        say(f"  chroma (hnsw M=16, ef=100 defaults): val recall@10 {figures['chroma_recall_at_10']}")

        def latencies(suffix: str) -> None:
            """Single-query p50/p95 of every store, stored under names ending in `suffix`."""
            timed = {
                "flat": (lambda i: flat.search_vectors(val_q[i][None, :], 10), len(val_q)),
                "hnsw": (lambda i: hnsw.search_vectors(val_q[i][None, :], 10), len(val_q)),
                "hybrid": (lambda i: hybrid.search(texts[i], 10, vector=val_q[i]), len(texts)),
                "chroma": (lambda i: chroma.search_vectors(val_q[i][None, :], 10), len(val_q)),
            }
            for name, (search, n_queries) in timed.items():
                figures[f"{name}_p50_ms{suffix}"], figures[f"{name}_p95_ms{suffix}"] = _time_queries(search, n_queries)
                say(f"  {name}{suffix or ' (quiet)'}: p50 {figures[f'{name}_p50_ms{suffix}']} ms, p95 {figures[f'{name}_p95_ms{suffix}']} ms")

        latencies("")
        with inference_load(threads=load_threads):
            latencies("_busy")
    return figures


def main(quick: bool = False, args: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="sloflow bench retrieval")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="HotpotQA questions with context (JSON list)")
    parser.add_argument("--chunks", type=int, default=None, help="synthetic corpus size (default 100000; 10000 with --quick)")
    parser.add_argument("--target-recall", type=float, default=0.97, help="HNSW efSearch is the smallest reaching this on train")
    parser.add_argument("--load-threads", type=int, default=1, help="cores the embedded model keeps busy for the *_busy figures")
    opts = parser.parse_args(args or [])
    questions = json.loads(opts.data.read_text())
    n = opts.chunks or (10_000 if quick else 100_000)
    started = time.perf_counter()
    recall = answer_recall(questions)
    figures = scale(questions, n, 100 if quick else 300, opts.target_recall, 800 if quick else 100_000, opts.load_threads)
    return {
        "quick": quick,
        "chunks": n,
        "hnsw_recall_at_10": figures["hnsw_recall_at_10"],
        "hnsw_p50_ms_100k": figures["hnsw_p50_ms"],
        "hnsw_p50_ms_100k_busy": figures["hnsw_p50_ms_busy"],
        "chroma_p50_ms_100k": figures["chroma_p50_ms"],
        "chroma_p50_ms_100k_busy": figures["chroma_p50_ms_busy"],
        "load_threads": opts.load_threads,
        "hybrid_answer_recall_at_10": recall["hybrid"],
        "dense_answer_recall_at_10": recall["dense"],
        "bm25_answer_recall_at_10": recall["bm25"],
        **{k: v for k, v in figures.items() if k not in ("hnsw_recall_at_10", "hnsw_p50_ms", "chroma_p50_ms", "hnsw_p50_ms_busy", "chroma_p50_ms_busy")},
        "seconds": round(time.perf_counter() - started, 1),
    }
