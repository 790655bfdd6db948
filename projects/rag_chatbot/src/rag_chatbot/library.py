"""The document library: files in, chunks in the semantic-search index.

Each document's chunks are index documents with ids `<doc id>#<n>` and `source` = the doc id (so
the search's `source` filter selects documents; see `document_chunks.py`). `prepare` parses,
chunks and embeds a file and writes nothing: the service writes through `docstore.py`, whose
registry (sqlite or Postgres) every worker shares. The corpus build (`dvc repro`, one process)
and the tests write here directly, recording documents in a JSON manifest beside the index
(`manifest.py`; the service imports it when it seeds its index).

Writes keep the index whole: a document is parsed, chunked and embedded before anything is
written; its new chunks then land in one atomic upsert, and only then are left-over chunks of an
older version deleted and the manifest replaced (write to a temporary file, then rename)."""

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from tokenizers import Tokenizer

from rag_chatbot.document_chunks import DocumentInfo, Prepared, chunk_document, chunk_id
from rag_chatbot.extract import ExtractError, Section, detect_format, extract
from rag_chatbot.manifest import Manifest
from semantic_search.documents import Document
from semantic_search.encoder import Encoder
from semantic_search.stores import VectorStore


@dataclass
class IngestResult:
    document: DocumentInfo
    status: str  # created | replaced | unchanged


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
        self._manifest = Manifest(self.manifest_path)
        self._lock = threading.Lock()

    # -- reads (the manifest) ---------------------------------------------------------------------

    def documents(self) -> list[DocumentInfo]:
        return [DocumentInfo(**d) for d in self._manifest.read().values()]

    def get(self, doc_id: str) -> DocumentInfo | None:
        d = self._manifest.read().get(doc_id)
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
            self._manifest.write({**self._manifest.read(), doc_id: asdict(info)})
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
        manifest = dict(self._manifest.read())
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
        self._manifest.write(manifest)
        return written

    def delete(self, doc_id: str) -> bool:
        with self._lock:
            info = self.get(doc_id)
            if info is None:
                return False
            self.store.delete([chunk_id(doc_id, n) for n in range(info.chunks)])
            manifest = dict(self._manifest.read())
            manifest.pop(doc_id, None)
            self._manifest.write(manifest)
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
        return chunk_document(
            doc_id,
            title,
            sections,
            tokenizer=self.tokenizer,
            chunk_tokens=self.chunk_tokens,
            overlap_tokens=self.overlap_tokens,
            file=file,
            kind=kind,
            sha=sha,
            topic=topic,
        )
