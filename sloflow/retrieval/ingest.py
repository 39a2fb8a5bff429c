"""Turn files (text, Markdown, JSON Lines, HTML) into documents, and ingest them into an index."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path

from tqdm import tqdm

from sloflow.errors import InvalidRequest
from sloflow.retrieval.chunking import Document, check_metadata
from sloflow.retrieval.document_index import DocumentIndex, IngestReport

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES


class _HtmlText(HTMLParser):
    """Visible text of an HTML page, one block element per paragraph."""

    _SKIP = {"script", "style", "noscript", "template", "head"}
    _BLOCK = {"p", "div", "section", "article", "li", "tr", "br", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.title = ""
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        self._in_title = tag == "title"
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()
        elif not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """(title, visible text) of an HTML page."""
    parser = _HtmlText()
    parser.feed(html)
    text = "".join(parser.parts)
    paragraphs = (" ".join(p.split()) for p in text.split("\n\n"))
    return parser.title, "\n\n".join(p for p in paragraphs if p)


def read_documents(path: Path) -> Iterator[Document]:
    """The documents in one file; a JSON Lines file gives one document per line (`text`, optional `id`)."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidRequest(f"{path}: unsupported file type {suffix!r}; use one of {sorted(SUFFIXES)}")
    raw = path.read_text(encoding="utf-8", errors="replace")
    source = str(path.resolve())
    if suffix in TEXT_SUFFIXES:
        yield Document(source, raw, {"source": source, "title": path.stem})
    elif suffix in HTML_SUFFIXES:
        title, text = html_to_text(raw)
        yield Document(source, text, {"source": source, "title": title or path.stem})
    else:
        for lineno, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidRequest(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise InvalidRequest(f'{path}:{lineno}: each line must be an object with a string "text"')
            doc_id = str(row.pop("id", f"{source}:{lineno}"))
            text = row.pop("text")
            yield Document(doc_id, text, check_metadata({"source": source, **row}))


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files given directly, plus the supported files under any folder given."""
    files = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidRequest(f"{path} does not exist")
    return files


def ingest_paths(index: DocumentIndex, paths: Sequence[Path], batch: int = 32, progress: bool | None = None) -> IngestReport:
    """Ingest every document under `paths`; the progress bar shows only on a terminal by default."""
    files = expand_paths(paths)
    total = IngestReport()
    bar = tqdm(total=len(files), unit="file", disable=not (sys.stderr.isatty() if progress is None else progress))
    with bar:
        for start in range(0, len(files), batch):
            part = files[start : start + batch]
            total = total + index.add_documents([d for f in part for d in read_documents(f)])
            bar.update(len(part))
    return total
