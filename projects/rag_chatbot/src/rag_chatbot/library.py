"""The document library: files in, chunks in the semantic-search index.

Each document's chunks are index documents with ids `<doc id>#<n>` and `source` = the doc id (so
the search's `source` filter selects documents). `prepare` parses, chunks and embeds a file and
writes nothing: the service writes through `docstore.py`, whose registry (sqlite or Postgres)
every worker shares. The corpus build (`dvc repro`, one process) and the tests write here
directly, recording documents in a JSON manifest beside the index (the service imports it when
it seeds its index).

Writes keep the index whole: a document is parsed, chunked and embedded before anything is
written; its new chunks then land in one atomic upsert, and only then are left-over chunks of an
older version deleted and the manifest replaced (write to a temporary file, then rename)."""

import datetime as dt
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from rag_chatbot.chunking import Chunk, chunk_sections
from rag_chatbot.extract import ExtractError, Section, detect_format, extract
from semantic_search.documents import MAX_ID_CHARS, Document
from semantic_search.encoder import Encoder
from semantic_search.stores import VectorStore

MAX_DOC_ID_CHARS = MAX_ID_CHARS - 16  # room for "#<chunk number>"


@dataclass
class DocumentInfo:
    id: str
    title: str
    file: str
    format: str
    sha256: str
    chunks: int
    pages: int | None
    characters: int
    duplicates_dropped: int
    topic: str
    ingested_at: str


@dataclass
class Prepared:
    """A parsed, chunked and embedded document, not yet written."""

    info: DocumentInfo
    docs: list[Document]
    vectors: np.ndarray


@dataclass
class IngestResult:
    document: DocumentInfo
    status: str  # created | replaced | unchanged


def chunk_id(doc_id: str, n: int) -> str:
    return f"{doc_id}#{n}"


def embedding_text(title: str, chunk: Chunk) -> str:
    """What the encoder sees: the title and heading path give a chunk its subject."""
    heading = f" > {chunk.heading}" if chunk.heading else ""
    return f"{title}{heading}. {chunk.text}" if title else chunk.text


class Library:
    def __init__(
        self,
        store: VectorStore,
        encoder: Encoder,
        manifest: Path | None,
        *,
        chunk_tokens: int = 160,
        overlap_tokens: int = 24,
    ) -> None:
        # No manifest: the service's, whose registry is registry.py (it only calls `prepare`).
        self.store, self.encoder = store, encoder
        self.manifest_path = Path(manifest) if manifest else None
        self.tokenizer: Tokenizer = encoder.tokenizer
        self.chunk_tokens = min(chunk_tokens, encoder.max_tokens - 2)  # [CLS] and [SEP]
        self.overlap_tokens = overlap_tokens
        self._cache: tuple[tuple[int, int], dict[str, dict]] | None = None
        self._lock = threading.Lock()

    # -- the manifest ---------------------------------------------------------------------------

    def _read(self) -> dict[str, dict]:
        if self.manifest_path is None:
            return {}
        try:
            stat = self.manifest_path.stat()
        except FileNotFoundError:
            return {}
        key = (stat.st_mtime_ns, stat.st_size)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, json.loads(self.manifest_path.read_text(encoding="utf-8")))
        return self._cache[1]

    def _write(self, manifest: dict[str, dict]) -> None:
        if self.manifest_path is None:
            raise RuntimeError("this library has no manifest: write through docstore")
        self.manifest_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.manifest_path)  # atomic: readers see the old or the new file

    def documents(self) -> list[DocumentInfo]:
        return [DocumentInfo(**d) for d in self._read().values()]

    def get(self, doc_id: str) -> DocumentInfo | None:
        d = self._read().get(doc_id)
        return DocumentInfo(**d) if d else None

    # -- writes -----------------------------------------------------------------------------------

    def prepare(
        self,
        filename: str,
        data: bytes,
        *,
        doc_id: str | None = None,
        title: str | None = None,
        topic: str = "",
        media_type: str | None = None,
        max_pages: int = 1000,
        max_chunks: int | None = None,
        max_chars: int | None = None,
        parse_timeout_s: float | None = None,
        parse: Callable[..., tuple[str, list[Section]]] = extract,
    ) -> Prepared:
        """Parse, chunk and embed, writing nothing (CPU work: run it off the event loop).
        Raises `ExtractError` for a file that cannot be read or is over a limit."""
        doc_id = doc_id or Path(filename).name
        kind = detect_format(filename, media_type)  # refuse the wrong type before reading anything
        found_title, sections = parse(
            filename,
            data,
            media_type=media_type,
            max_pages=max_pages,
            timeout_s=parse_timeout_s,
            max_chars=max_chars,
        )
        chars = sum(len(s.text) for s in sections)
        if max_chars is not None and chars > max_chars:  # before tokenizing: ~1 s a megabyte
            raise ExtractError(
                "document_too_long",
                f"the document has {chars} characters of "
                f"text, over the limit of {max_chars}; split it",
                status=413,
            )
        info, docs, texts = self._chunk(
            doc_id,
            title or found_title,
            sections,
            file=Path(filename).name,
            kind=kind,
            sha=hashlib.sha256(data).hexdigest(),
            topic=topic,
        )
        if max_chunks is not None and len(docs) > max_chunks:
            raise ExtractError(
                "too_many_chunks",
                f"the document makes {len(docs)} chunks, over the limit of {max_chunks}; split it",
                status=413,
            )
        return Prepared(info, docs, self.encoder.encode(texts))

    def add_file(
        self,
        filename: str,
        data: bytes,
        *,
        doc_id: str | None = None,
        title: str | None = None,
        **options,
    ) -> IngestResult:
        """Add or replace one document (the CLI and the corpus; the service writes through
        `documents.Documents`). Raises `ExtractError` before touching the index."""
        doc_id = doc_id or Path(filename).name
        detect_format(filename, options.get("media_type"))
        old = self.get(doc_id)
        if old and old.sha256 == hashlib.sha256(data).hexdigest() and title in (None, old.title):
            return IngestResult(old, "unchanged")
        new = self.prepare(filename, data, doc_id=doc_id, title=title, **options)
        info, docs = new.info, new.docs
        with self._lock:
            old = self.get(doc_id)
            self.store.upsert(docs, new.vectors)
            if old and old.chunks > info.chunks:
                self.store.delete([chunk_id(doc_id, n) for n in range(info.chunks, old.chunks)])
            self._write({**self._read(), doc_id: asdict(info)})
        return IngestResult(info, "replaced" if old else "created")

    def add_many(
        self,
        items: Iterable[
            tuple[str, str, list[Section], str] | tuple[str, str, list[Section], str, dict]
        ],
        *,
        batch_size: int = 512,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Bulk load (the corpus build): `items` are (doc id, title, sections, topic[, metadata
        every chunk gets, such as an article's description]); chunks are embedded and written in
        batches. Returns the number of chunks written."""
        manifest = dict(self._read())
        written = 0
        pending: list[tuple[Document, str]] = []

        def flush() -> None:
            nonlocal written
            vectors = self.encoder.encode([t for _, t in pending])
            written += self.store.upsert([d for d, _ in pending], vectors)
            pending.clear()
            if on_batch:
                on_batch(written)

        for doc_id, title, sections, topic, *extra in items:
            text = "\n\n".join(s.text for s in sections)
            info, docs, texts = self._chunk(
                doc_id,
                title,
                sections,
                file=doc_id,
                kind="text",
                sha=hashlib.sha256(text.encode()).hexdigest(),
                topic=topic,
            )
            for d in docs:
                d.metadata.update(*extra)
            manifest[doc_id] = asdict(info)
            pending += zip(docs, texts, strict=True)
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
        self.store.optimize()
        self._write(manifest)
        return written

    def delete(self, doc_id: str) -> bool:
        with self._lock:
            info = self.get(doc_id)
            if info is None:
                return False
            self.store.delete([chunk_id(doc_id, n) for n in range(info.chunks)])
            manifest = dict(self._read())
            manifest.pop(doc_id, None)
            self._write(manifest)
        return True

    # -- helpers ----------------------------------------------------------------------------------

    def _chunk(
        self,
        doc_id: str,
        title: str,
        sections: list[Section],
        *,
        file: str,
        kind: str,
        sha: str,
        topic: str,
    ) -> tuple[DocumentInfo, list[Document], list[str]]:
        if not re.search(r"\S", doc_id) or len(doc_id) > MAX_DOC_ID_CHARS:
            raise ValueError(f"document id must be 1 to {MAX_DOC_ID_CHARS} characters")
        chunks, dropped = chunk_sections(
            sections,
            self.tokenizer,
            chunk_tokens=self.chunk_tokens,
            overlap_tokens=self.overlap_tokens,
        )
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        pages = [s.page for s in sections if s.page is not None]
        info = DocumentInfo(
            doc_id,
            title,
            file,
            kind,
            sha,
            len(chunks),
            max(pages) if pages else None,
            sum(len(s.text) for s in sections),
            dropped,
            topic,
            now,
        )
        docs = []
        for n, c in enumerate(chunks):
            meta: dict = {"doc_id": doc_id, "chunk": n, "section": c.heading, "file": file}
            if c.page is not None:
                meta["page"] = c.page
            docs.append(
                Document(
                    id=chunk_id(doc_id, n),
                    text=c.text,
                    title=title,
                    topic=topic,
                    source=doc_id,
                    metadata=meta,
                )
            )
        return info, docs, [embedding_text(title, c) for c in chunks]
