"""Ingestion: file types, idempotent re-ingestion, replacement of changed documents, persistence, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sloflow.errors import InvalidRequest, NotFound
from sloflow.retrieval.chunking import Document
from sloflow.retrieval.document_index import DocumentIndex, IndexConfig, IndexRegistry
from sloflow.retrieval.embedder import Embedder
from sloflow.retrieval.ingest import html_to_text, ingest_paths, read_documents


def _corpus(folder: Path) -> Path:
    folder.mkdir()
    (folder / "tea.txt").write_text("Green tea is brewed from the leaves of Camellia sinensis.")
    (folder / "rivers.md").write_text("# Rivers\n\nThe Nile flows north through Egypt into the Mediterranean.")
    (folder / "page.html").write_text(
        "<html><head><title>Bread</title><style>p {color: red}</style></head>"
        "<body><p>Sourdough rises with wild yeast.</p><script>alert(1)</script></body></html>"
    )
    (folder / "facts.jsonl").write_text(
        json.dumps({"id": "py", "text": "Python was created by Guido van Rossum.", "topic": "tech"})
        + "\n\n"
        + json.dumps({"text": "FAISS searches dense vectors.", "topic": "tech"})
        + "\n"
    )
    (folder / "ignored.bin").write_bytes(b"\x00\x01")
    return folder


def test_html_keeps_visible_text_and_title_only() -> None:
    title, text = html_to_text("<title>T</title><div>a <b>b</b></div><script>x()</script><p>c</p>")
    assert title == "T" and text == "a b\n\nc"


def test_jsonl_lines_become_documents_with_metadata(tmp_path: Path) -> None:
    docs = list(read_documents(_corpus(tmp_path / "docs") / "facts.jsonl"))
    assert [d.id for d in docs][0] == "py" and docs[1].id.endswith("facts.jsonl:3")
    assert docs[0].metadata["topic"] == "tech" and docs[0].metadata["source"].endswith("facts.jsonl")


def test_bad_input_files_are_refused_with_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"no_text": 1}\n')
    with pytest.raises(InvalidRequest, match="bad.jsonl:2"):
        list(read_documents(bad))
    with pytest.raises(InvalidRequest, match="unsupported"):
        list(read_documents(tmp_path / "x.pdf"))


def test_ingest_is_idempotent_and_replaces_changed_documents(tmp_path: Path, embedder: Embedder) -> None:
    corpus = _corpus(tmp_path / "docs")
    index = DocumentIndex.create(tmp_path / "idx" / "notes", IndexConfig(chunk_size=50, chunk_overlap=5), embedder)
    first = ingest_paths(index, [corpus], progress=False)
    assert (first.added, first.replaced, first.unchanged) == (5, 0, 0) and len(index) == 5
    again = ingest_paths(index, [corpus], progress=False)
    assert (again.added, again.replaced, again.unchanged, again.chunks) == (0, 0, 5, 0)
    (corpus / "tea.txt").write_text("Black tea is fully oxidised before drying.")
    changed = ingest_paths(index, [corpus], progress=False)
    assert (changed.added, changed.replaced, changed.unchanged) == (0, 1, 4) and len(index) == 5
    assert index.search("Camellia sinensis", k=5, mode="bm25") == []
    assert index.search("oxidised black tea", k=1)[0].metadata["title"] == "tea"
    hit = index.search("Who made Python?", k=1, mode="dense")[0]
    assert hit.doc_id == "py" and hit.metadata["topic"] == "tech"
    assert index.search("bread", k=1)[0].metadata["title"] == "Bread"
    assert "alert" not in " ".join(h.text for h in index.search("alert", k=5))


def test_an_index_reopens_with_its_documents_and_search(tmp_path: Path, embedder: Embedder) -> None:
    registry = IndexRegistry(tmp_path / "indexes", embedder)
    registry.get("notes", create=True).add_documents([Document("a", "The Nile flows through Egypt."), Document("b", "Tea leaves.")])
    reopened = IndexRegistry(tmp_path / "indexes", embedder)
    assert reopened.names() == ["notes"]
    index = reopened.get("notes")
    assert [d["id"] for d in index.documents()] == ["a", "b"]
    for mode in ("hybrid", "dense", "bm25"):
        assert index.search("Egypt river", k=1, mode=mode)[0].doc_id == "a"
    assert index.delete_documents(["a", "zzz"]) == 1 and len(index) == 1
    reopened.drop("notes")
    with pytest.raises(NotFound):
        reopened.get("notes")


def test_a_chroma_backed_index_works_the_same(tmp_path: Path, embedder: Embedder) -> None:
    registry = IndexRegistry(tmp_path / "indexes", embedder)
    index = registry.create("notes-chroma", IndexConfig(store="chroma"))
    index.add_documents([Document("a", "The Nile flows through Egypt."), Document("b", "Tea leaves.")])
    assert IndexRegistry(tmp_path / "indexes", embedder).get("notes-chroma").search("river in Egypt", k=1)[0].doc_id == "a"


@pytest.mark.parametrize("name", ["ab", "-bad", "a/b", "x" * 65, "white space"])
def test_bad_index_names_are_refused(tmp_path: Path, embedder: Embedder, name: str) -> None:
    with pytest.raises(InvalidRequest, match="index name"):
        IndexRegistry(tmp_path, embedder).create(name)
    assert not any(tmp_path.iterdir())


def test_cli_ingest_and_db_commands(tmp_path: Path, shop_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    from sloflow.config import get_settings
    from sloflow.retrieval import commands, sources

    monkeypatch.setenv("SLOFLOW_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    sources.default_sources.cache_clear()
    app = typer.Typer()
    app.command("ingest")(commands.ingest)
    app.add_typer(commands.db_app, name="db")
    runner = CliRunner()
    try:
        out = runner.invoke(app, ["ingest", str(_corpus(tmp_path / "docs")), "--index", "notes"])
        assert out.exit_code == 0, out.output
        assert "5 added" in out.output and "it/s" not in out.output  # no progress bar when not a terminal
        assert "5 unchanged" in runner.invoke(app, ["ingest", str(tmp_path / "docs"), "--index", "notes"]).output
        assert runner.invoke(app, ["db", "add", "shop", f"sqlite:///{shop_db}"]).exit_code == 0
        assert "shop" in runner.invoke(app, ["db", "list"]).output
        assert "users(id INTEGER PK" in runner.invoke(app, ["db", "schema", "shop"]).output
        missing = runner.invoke(app, ["db", "schema", "nope"])
        assert missing.exit_code == 2 and "not registered" in missing.output
    finally:
        get_settings.cache_clear()
        sources.default_sources.cache_clear()
