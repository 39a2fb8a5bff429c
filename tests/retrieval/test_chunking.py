"""Chunking: fixed windows with overlap, paragraphs, provenance, metadata rules."""

from __future__ import annotations

import pytest

from sloflow.errors import InvalidRequest
from sloflow.retrieval.chunking import Document, check_metadata, chunk_document, chunk_fixed, chunk_paragraphs


def test_fixed_windows_overlap_and_cover_every_word() -> None:
    text = " ".join(f"w{i}" for i in range(25))
    pieces = chunk_fixed(text, size=10, overlap=3)
    assert [p.split()[0] for p in pieces] == ["w0", "w7", "w14", "w21"]
    assert all(len(p.split()) <= 10 for p in pieces)
    assert pieces[0].split()[-3:] == pieces[1].split()[:3]
    assert pieces[-1].split()[-1] == "w24"


def test_a_short_text_is_one_chunk_and_an_empty_one_none() -> None:
    assert chunk_fixed("just a few words", size=10, overlap=2) == ["just a few words"]
    assert chunk_fixed("   ", size=10, overlap=2) == []


def test_chunks_keep_the_original_spacing() -> None:
    assert chunk_fixed("line one\nline  two", size=10, overlap=0) == ["line one\nline  two"]


def test_paragraph_chunks_split_on_blank_lines_and_long_paragraphs() -> None:
    text = "First para.\n\n\nSecond para here.\n  \n" + " ".join(["x"] * 7)
    assert chunk_paragraphs(text, max_words=5) == ["First para.", "Second para here.", "x x x x x", "x x"]


def test_chunks_carry_document_id_position_and_metadata() -> None:
    doc = Document("doc-1", " ".join(["word"] * 30), {"lang": "en"})
    chunks = chunk_document(doc, "fixed", size=10, overlap=0)
    assert [(c.doc_id, c.position, c.id) for c in chunks] == [("doc-1", i, f"doc-1#{i}") for i in range(3)]
    assert all(c.metadata == {"lang": "en"} for c in chunks)


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_bad_chunk_settings_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(InvalidRequest):
        chunk_fixed("a b c", size=size, overlap=overlap)


def test_metadata_must_be_flat() -> None:
    assert check_metadata({"a": 1, "b": "x", "c": True, "d": 0.5}) == {"a": 1, "b": "x", "c": True, "d": 0.5}
    with pytest.raises(InvalidRequest, match="tags"):
        check_metadata({"tags": ["x"]})
