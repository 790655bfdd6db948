"""A document as the index holds it: its `DocumentInfo`, and its chunks as index documents with
ids `<doc id>#<n>` and `source` = the doc id (so the search's `source` filter selects
documents), each embedded with its title and heading path."""

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from rag_chatbot.chunking import Chunk, chunk_sections
from rag_chatbot.extract import Section
from semantic_search.documents import MAX_ID_CHARS, Document

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


def chunk_id(doc_id: str, n: int) -> str:
    return f"{doc_id}#{n}"


def embedding_text(title: str, chunk: Chunk) -> str:
    """What the encoder sees: the title and heading path give a chunk its subject."""
    heading = f" > {chunk.heading}" if chunk.heading else ""
    return f"{title}{heading}. {chunk.text}" if title else chunk.text


def chunk_document(
    doc_id: str,
    title: str,
    sections: list[Section],
    *,
    tokenizer: Tokenizer,
    chunk_tokens: int,
    overlap_tokens: int,
    file: str,
    kind: str,
    sha: str,
    topic: str,
) -> tuple[DocumentInfo, list[Document], list[str]]:
    """-> (the document's info, its chunks as index documents, the text to embed for each)."""
    if not re.search(r"\S", doc_id) or len(doc_id) > MAX_DOC_ID_CHARS:
        raise ValueError(f"document id must be 1 to {MAX_DOC_ID_CHARS} characters")
    chunks, dropped = chunk_sections(
        sections,
        tokenizer,
        chunk_tokens=chunk_tokens,
        overlap_tokens=overlap_tokens,
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
