"""The service's write path: a process that dies between any two steps of a write loses no
acknowledged document and serves nothing half-written once restarted; JSON files of earlier
versions are migrated into the registry once."""

import json

import pytest

from rag_chatbot.docstore import DocumentExistsError, DocumentStore, open_registry
from rag_chatbot.library import Library, chunk_id
from rag_chatbot.registry import Registry
from semantic_search.encoder import Encoder
from semantic_search.stores import open_store

from .conftest import ZEBRA

SHORT = b"# Zebra field guide\n\nZebras are striped."


class Killed(BaseException):
    """A process dying here: nothing after this point runs (not even `except Exception`)."""


def open_docs(encoder_dir, folder) -> DocumentStore:
    """What a (re)started service does: open index and registry, finish pending writes."""
    encoder = Encoder(encoder_dir)
    library = Library(open_store(str(folder / "index"), encoder.dim), encoder, None,
                      chunk_tokens=40, overlap_tokens=0)  # fmt: skip
    docs = DocumentStore(library, Registry(folder / "uploads" / "registry.sqlite"),
                         folder / "uploads")  # fmt: skip
    docs.reconcile()
    return docs


def put(docs: DocumentStore, name: str, data: bytes, *, replace: bool = False):
    new = docs.prepare(name, data, doc_id=name, title=None, topic="", media_type=None)
    return docs.put(new, data, title=None, media_type=None, replace=replace)


def served_chunks(docs: DocumentStore, doc_id: str, upto: int = 50) -> list[str]:
    return [d.text for d in docs.store.get([chunk_id(doc_id, n) for n in range(upto)])]


@pytest.mark.parametrize("dies_in", ["upsert", "delete", "finish_put"])
def test_a_replace_killed_at_any_step_is_finished_on_restart(encoder_dir, tmp_path, monkeypatch,
                                                             dies_in):  # fmt: skip
    docs = open_docs(encoder_dir, tmp_path)
    put(docs, "zebra.md", ZEBRA.encode())
    assert docs.get("zebra.md").chunks > 1  # so the replace has stale chunks to delete
    target = docs.registry if dies_in == "finish_put" else docs.store
    real = getattr(target, dies_in)

    def dies(*args, **kwargs):
        real(*args, **kwargs)  # the step itself completes; the process dies right after it
        raise Killed

    monkeypatch.setattr(target, dies_in, dies)
    with pytest.raises(Killed):
        put(docs, "zebra.md", SHORT, replace=True)
    monkeypatch.undo()
    restarted = open_docs(encoder_dir, tmp_path)
    info = restarted.get("zebra.md")
    assert info.chunks == 1 and info.sha256 == restarted.prepare(
        "zebra.md", SHORT, doc_id="zebra.md", title=None, topic="", media_type=None).info.sha256  # fmt: skip
    assert served_chunks(restarted, "zebra.md") == ["Zebras are striped."]  # no stale chunk
    assert restarted.registry.pending() == []


def test_a_new_upload_killed_before_its_chunks_land_is_written_on_restart(encoder_dir, tmp_path,
                                                                           monkeypatch):  # fmt: skip
    docs = open_docs(encoder_dir, tmp_path)

    def dies(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(docs, "_apply_put", dies)
    with pytest.raises(Killed):
        put(docs, "zebra.md", ZEBRA.encode())
    assert docs.get("zebra.md") is None  # not acknowledged, not listed
    monkeypatch.undo()
    restarted = open_docs(encoder_dir, tmp_path)
    assert restarted.get("zebra.md").chunks == len(served_chunks(restarted, "zebra.md")) > 1


def test_a_delete_killed_after_the_chunks_went_is_finished_on_restart(encoder_dir, tmp_path,
                                                                      monkeypatch):  # fmt: skip
    docs = open_docs(encoder_dir, tmp_path)
    put(docs, "zebra.md", ZEBRA.encode())
    real = docs.store.delete

    def dies(ids):
        real(ids)
        raise Killed

    monkeypatch.setattr(docs.store, "delete", dies)
    with pytest.raises(Killed):
        docs.delete("zebra.md")
    monkeypatch.undo()
    restarted = open_docs(encoder_dir, tmp_path)
    assert restarted.get("zebra.md") is None and served_chunks(restarted, "zebra.md") == []
    assert [p.name for p in (tmp_path / "uploads").iterdir() if "registry" not in p.name] == []


def test_a_taken_id_is_refused_and_nothing_is_written(encoder_dir, tmp_path):
    docs = open_docs(encoder_dir, tmp_path)
    put(docs, "notes.txt", b"Alice's notes.")
    with pytest.raises(DocumentExistsError):
        put(docs, "notes.txt", b"Bob's notes.")
    assert served_chunks(docs, "notes.txt") == ["Alice's notes."]
    assert docs.registry.pending() == []
    assert put(docs, "notes.txt", b"Bob's notes.", replace=True)[1] == "replaced"


def test_a_file_kept_by_two_documents_stays_until_both_are_gone(encoder_dir, tmp_path):
    docs = open_docs(encoder_dir, tmp_path)
    put(docs, "a.txt", b"Same bytes.")
    put(docs, "b.txt", b"Same bytes.")
    sha = docs.get("a.txt").sha256
    docs.delete("a.txt")
    assert (tmp_path / "uploads" / sha).exists()
    docs.delete("b.txt")
    assert not (tmp_path / "uploads" / sha).exists()


def test_the_json_manifest_and_upload_list_are_migrated_once(encoder_dir, tmp_path):
    """A service index written by the previous version: manifest.json beside the index, uploads
    in uploads.json. The registry takes both over; uploads stay uploads (rebuildable)."""
    encoder = Encoder(encoder_dir)
    old = Library(open_store(str(tmp_path / "index"), encoder.dim), encoder,
                  tmp_path / "index" / "manifest.json", chunk_tokens=40, overlap_tokens=0)  # fmt: skip
    old.add_file("corpus.txt", b"The corpus article about rivers.")
    up = old.add_file("owls.txt", b"Owls hunt at night.").document
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / up.sha256).write_bytes(b"Owls hunt at night.")
    (tmp_path / "uploads" / "uploads.json").write_text(json.dumps({"owls.txt": {
        "file": "owls.txt", "sha256": up.sha256, "title": None, "topic": "", "media_type": None}}))  # fmt: skip
    registry = Registry(tmp_path / "uploads" / "registry.sqlite")
    open_registry(registry, tmp_path / "index", tmp_path / "uploads", seeded=False)
    assert registry.page(10, 0)[0] == 2
    assert [r.id for r in registry.uploads()] == ["owls.txt"]
    assert (tmp_path / "uploads" / "uploads.json.migrated").exists()
    open_registry(registry, tmp_path / "index", tmp_path / "uploads", seeded=False)  # no-op
    assert registry.page(10, 0)[0] == 2


def test_a_milvus_index_keeps_its_registry_on_local_disk(tmp_path):
    """It used to be `<index uri>/manifest.json`, i.e. `http:/host:19530/manifest.json`."""
    from rag_chatbot.service import registry_path
    from rag_chatbot.settings import Settings

    settings = Settings(index_uri="http://milvus:19530", uploads_dir=tmp_path / "uploads")
    assert registry_path(settings) == tmp_path / "uploads" / "registry.sqlite"
    explicit = Settings(index_uri="http://milvus:19530", registry=tmp_path / "r.sqlite")
    assert registry_path(explicit) == tmp_path / "r.sqlite"
