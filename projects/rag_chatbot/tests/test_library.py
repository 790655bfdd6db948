"""Documents in and out of the index: replace, unchanged, delete, and failures that change
nothing."""

import pytest

from rag_chatbot.document_chunks import chunk_id
from rag_chatbot.extract import ExtractError
from rag_chatbot.library import Library
from semantic_search.encoder import Encoder
from semantic_search.stores import open_store

from .conftest import ZEBRA, make_pdf


@pytest.fixture
def library(encoder_dir, tmp_path) -> Library:
    encoder = Encoder(encoder_dir)
    store = open_store(str(tmp_path / "index"), encoder.dim)
    return Library(
        store, encoder, tmp_path / "index" / "manifest.json", chunk_tokens=40, overlap_tokens=8
    )


def chunk_ids(library: Library, doc_id: str) -> list[str]:
    info = library.get(doc_id)
    return [d.id for d in library.store.get([chunk_id(doc_id, n) for n in range(info.chunks)])]


def test_a_pdf_becomes_chunks_with_pages_and_metadata(library):
    data = make_pdf(["Zebras have stripes. " * 10, "Lions hunt at night. " * 10], title="Savanna")
    result = library.add_file("savanna.pdf", data, topic="animals")
    info = result.document
    assert (result.status, info.title, info.pages, info.format) == ("created", "Savanna", 2, "pdf")
    chunks = library.store.get([chunk_id("savanna.pdf", n) for n in range(info.chunks)])
    assert len(chunks) == info.chunks >= 2
    assert {c.metadata["page"] for c in chunks} == {1, 2}
    assert all(c.source == "savanna.pdf" and c.topic == "animals" for c in chunks)
    assert library.store.count() == info.chunks


def test_same_bytes_are_unchanged_and_a_new_version_replaces_every_chunk(library):
    first = library.add_file("zebra.md", ZEBRA.encode())
    assert library.add_file("zebra.md", ZEBRA.encode()).status == "unchanged"
    shorter = "# Zebra field guide\n\nZebras are striped."
    second = library.add_file("zebra.md", shorter.encode())
    assert second.status == "replaced"
    assert first.document.chunks > second.document.chunks == 1
    assert library.store.count() == 1  # no chunk of the old version is left behind
    assert library.store.get([chunk_id("zebra.md", 0)])[0].text == "Zebras are striped."


def test_delete_removes_the_chunks_and_the_entry(library):
    library.add_file("zebra.md", ZEBRA.encode())
    library.add_file("notes.txt", b"Some other notes about giraffes.")
    assert library.delete("zebra.md")
    assert library.get("zebra.md") is None
    assert [d.id for d in library.documents()] == ["notes.txt"]
    assert library.store.count() == 1
    assert not library.delete("zebra.md")


def test_a_bad_file_leaves_the_index_as_it_was(library):
    library.add_file("zebra.md", ZEBRA.encode())
    before = (library.store.count(), library.manifest_path.read_bytes())
    bad = [
        ("zebra.md", b"\x00\x01 binary"),
        ("zebra.md", make_pdf(["x"], password="pw")),
        ("zebra.pdf", b"%PDF-1.7 garbage"),
    ]
    for name, data in bad:
        with pytest.raises(ExtractError):
            library.add_file(name, data)
    assert (library.store.count(), library.manifest_path.read_bytes()) == before


def test_a_failed_write_leaves_the_old_version_whole(library, monkeypatch):
    library.add_file("zebra.md", ZEBRA.encode())
    before = sorted(chunk_ids(library, "zebra.md"))
    texts = [d.text for d in library.store.get(before)]

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(library.store, "upsert", broken)
    with pytest.raises(OSError, match="disk full"):
        library.add_file("zebra.md", b"# New version\n\nCompletely different text.")
    assert sorted(chunk_ids(library, "zebra.md")) == before
    assert [d.text for d in library.store.get(before)] == texts
    assert library.get("zebra.md").title == "Zebra field guide"


def test_a_second_handle_sees_the_writes(library, encoder_dir, tmp_path):
    library.add_file("zebra.md", ZEBRA.encode())
    encoder = library.encoder
    other = Library(
        open_store(str(tmp_path / "index"), encoder.dim), encoder, library.manifest_path
    )
    assert other.get("zebra.md").chunks == library.get("zebra.md").chunks
