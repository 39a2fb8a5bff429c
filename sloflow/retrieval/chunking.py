"""Documents and chunks: fixed-size word windows with overlap (the default) or paragraphs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from sloflow.errors import InvalidRequest

Scalar = str | int | float | bool
ChunkMode = Literal["fixed", "paragraph"]

_WORD = re.compile(r"\S+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Document:
    """A text to index: its id, content and flat metadata (source path, title...)."""

    id: str
    text: str
    metadata: dict[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document; `position` is its order within the document."""

    doc_id: str
    position: int
    text: str
    metadata: dict[str, Scalar] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.doc_id}#{self.position}"


def check_metadata(metadata: dict) -> dict[str, Scalar]:
    """Metadata must be flat (str, int, float, bool values) so every store can filter on it."""
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
            raise InvalidRequest(
                f"metadata {key!r} has a {type(value).__name__} value; use str, int, float or bool values only",
                details={"key": str(key)},
            )
    return dict(metadata)


def chunk_fixed(text: str, size: int = 200, overlap: int = 20) -> list[str]:
    """Windows of `size` words, each starting `size - overlap` words after the previous one."""
    if size < 1 or not 0 <= overlap < size:
        raise InvalidRequest(f"chunk size {size} / overlap {overlap}: need size >= 1 and 0 <= overlap < size")
    spans = [m.span() for m in _WORD.finditer(text)]
    step = size - overlap
    pieces = []
    for start in range(0, len(spans), step):
        window = spans[start : start + size]
        # Slice the original text so the chunk keeps its own spacing and line breaks.
        pieces.append(text[window[0][0] : window[-1][1]])
        if start + size >= len(spans):
            break
    return pieces


def chunk_paragraphs(text: str, max_words: int = 400) -> list[str]:
    """One chunk per blank-line-separated paragraph; a paragraph longer than `max_words` is split."""
    pieces = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        if paragraph.strip():
            pieces.extend(chunk_fixed(paragraph.strip(), size=max_words, overlap=0))
    return pieces


def chunk_document(doc: Document, mode: ChunkMode = "fixed", size: int = 200, overlap: int = 20) -> list[Chunk]:
    """Split `doc` into chunks that carry its id, their position and its metadata."""
    pieces = chunk_fixed(doc.text, size, overlap) if mode == "fixed" else chunk_paragraphs(doc.text, size)
    return [Chunk(doc.id, i, piece, doc.metadata) for i, piece in enumerate(pieces)]
