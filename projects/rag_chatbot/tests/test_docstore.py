"""The service's write path, on both registry databases (sqlite and Postgres): a process that dies
between any two steps of a write loses no acknowledged document and serves nothing half-written
once restarted (on Postgres, by a replica on another host too); JSON files of earlier versions are
migrated into the registry once."""

import json
import shutil

import pytest

from rag_chatbot.docstore import DocumentExistsError, DocumentStore
from rag_chatbot.docstore_setup import open_registry
from rag_chatbot.document_chunks import chunk_id
from rag_chatbot.extract import ExtractError
from rag_chatbot.library import Library
from rag_chatbot.registry import Registry
from semantic_search.encoder import Encoder
from semantic_search.stores import open_store

from .conftest import ZEBRA

SHORT = b"# Zebra field guide\n\nZebras are striped."


class Killed(BaseException):
    """A process dying here: nothing after this point runs (not even `except Exception`)."""


def open_docs(
    encoder_dir, folder, registry_url: str | None = None, *, uploads: str = "uploads"
) -> DocumentStore:
    """What a (re)started service does: open index and registry, finish pending writes. Another
    `uploads` folder is another host's disk."""
    encoder = Encoder(encoder_dir)
    library = Library(
        open_store(str(folder / "index"), encoder.dim),
        encoder,
        None,
        chunk_tokens=40,
        overlap_tokens=0,
    )
    registry = Registry(registry_url or folder / uploads / "registry.sqlite")
    docs = DocumentStore(library, registry, folder / uploads)
    docs.reconcile()
    return docs


def is_kept(docs: DocumentStore, sha256: str) -> bool:
    try:
        docs.kept(sha256)
    except OSError:
        return False
    return True


def put(docs: DocumentStore, name: str, data: bytes, *, replace: bool = False):
    new = docs.prepare(name, data, doc_id=name, title=None, topic="", media_type=None)
    return docs.put(new, data, title=None, media_type=None, replace=replace)


def put_killed_before_its_chunks(docs, monkeypatch) -> None:
    """Uploads zebra.md, the process "dying" after its intent is committed, before its chunks."""

    def dies(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(docs, "_apply_put", dies)
    with pytest.raises(Killed):
        put(docs, "zebra.md", ZEBRA.encode())


def served_chunks(docs: DocumentStore, doc_id: str, upto: int = 50) -> list[str]:
    return [d.text for d in docs.store.get([chunk_id(doc_id, n) for n in range(upto)])]


@pytest.mark.parametrize("dies_in", ["upsert", "delete", "finish_put"])
def test_a_replace_killed_at_any_step_is_finished_on_restart(
    encoder_dir, tmp_path, monkeypatch, dies_in, registry_url
):
    docs = open_docs(encoder_dir, tmp_path, registry_url)
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
    restarted = open_docs(encoder_dir, tmp_path, registry_url)
    info = restarted.get("zebra.md")
    assert (
        info.chunks == 1
        and info.sha256
        == restarted.prepare(
            "zebra.md", SHORT, doc_id="zebra.md", title=None, topic="", media_type=None
        ).info.sha256
    )
    assert served_chunks(restarted, "zebra.md") == ["Zebras are striped."]  # no stale chunk
    assert restarted.registry.pending() == []


def test_a_new_upload_killed_before_its_chunks_land_is_written_on_restart(
    encoder_dir, tmp_path, monkeypatch, registry_url
):
    docs = open_docs(encoder_dir, tmp_path, registry_url)

    put_killed_before_its_chunks(docs, monkeypatch)
    assert docs.get("zebra.md") is None  # not acknowledged, not listed
    monkeypatch.undo()
    restarted = open_docs(encoder_dir, tmp_path, registry_url)
    assert restarted.get("zebra.md").chunks == len(served_chunks(restarted, "zebra.md")) > 1


def test_a_delete_killed_after_the_chunks_went_is_finished_on_restart(
    encoder_dir, tmp_path, monkeypatch, registry_url
):
    docs = open_docs(encoder_dir, tmp_path, registry_url)
    put(docs, "zebra.md", ZEBRA.encode())
    sha = docs.get("zebra.md").sha256
    real = docs.store.delete

    def dies(ids):
        real(ids)
        raise Killed

    monkeypatch.setattr(docs.store, "delete", dies)
    with pytest.raises(Killed):
        docs.delete("zebra.md")
    monkeypatch.undo()
    restarted = open_docs(encoder_dir, tmp_path, registry_url)
    assert restarted.get("zebra.md") is None and served_chunks(restarted, "zebra.md") == []
    assert not is_kept(restarted, sha)
    if registry_url is None:
        assert [p.name for p in (tmp_path / "uploads").iterdir() if "registry" not in p.name] == []


def test_a_taken_id_is_refused_and_nothing_is_written(encoder_dir, tmp_path, registry_url):
    docs = open_docs(encoder_dir, tmp_path, registry_url)
    put(docs, "notes.txt", b"Alice's notes.")
    with pytest.raises(DocumentExistsError):
        put(docs, "notes.txt", b"Bob's notes.")
    assert served_chunks(docs, "notes.txt") == ["Alice's notes."]
    assert docs.registry.pending() == []
    assert put(docs, "notes.txt", b"Bob's notes.", replace=True)[1] == "replaced"


def test_a_file_kept_by_two_documents_stays_until_both_are_gone(
    encoder_dir, tmp_path, registry_url
):
    docs = open_docs(encoder_dir, tmp_path, registry_url)
    put(docs, "a.txt", b"Same bytes.")
    put(docs, "b.txt", b"Same bytes.")
    sha = docs.get("a.txt").sha256
    docs.delete("a.txt")
    assert is_kept(docs, sha)
    docs.delete("b.txt")
    assert not is_kept(docs, sha)


def test_the_json_manifest_and_upload_list_are_migrated_once(encoder_dir, tmp_path, registry_url):
    """A service index written by the previous version: manifest.json beside the index, uploads
    in uploads.json. The registry takes both over; uploads stay uploads (rebuildable)."""
    encoder = Encoder(encoder_dir)
    old = Library(
        open_store(str(tmp_path / "index"), encoder.dim),
        encoder,
        tmp_path / "index" / "manifest.json",
        chunk_tokens=40,
        overlap_tokens=0,
    )
    old.add_file("corpus.txt", b"The corpus article about rivers.")
    up = old.add_file("owls.txt", b"Owls hunt at night.").document
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / up.sha256).write_bytes(b"Owls hunt at night.")
    (tmp_path / "uploads" / "uploads.json").write_text(
        json.dumps(
            {
                "owls.txt": {
                    "file": "owls.txt",
                    "sha256": up.sha256,
                    "title": None,
                    "topic": "",
                    "media_type": None,
                }
            }
        )
    )
    registry = Registry(registry_url or tmp_path / "uploads" / "registry.sqlite")
    open_registry(registry, tmp_path / "index", tmp_path / "uploads", seeded=False)
    assert registry.page(10, 0)[0] == 2
    assert [r.id for r in registry.uploads()] == ["owls.txt"]
    if registry.keeps_files:  # Postgres: the file moved into the database with its row
        assert registry.read_file(up.sha256) == b"Owls hunt at night."
    assert (tmp_path / "uploads" / "uploads.json.migrated").exists()
    open_registry(registry, tmp_path / "index", tmp_path / "uploads", seeded=False)  # no-op
    assert registry.page(10, 0)[0] == 2


def test_another_replica_finishes_a_write_its_host_left_pending(
    encoder_dir, tmp_path, monkeypatch, postgres_db
):
    """The rule for replicas on several hosts: the kept file is in Postgres, so any replica's
    next start finishes a write a killed one left pending, even with that host's disk gone."""
    docs = open_docs(encoder_dir, tmp_path, postgres_db, uploads="host-a")

    put_killed_before_its_chunks(docs, monkeypatch)
    monkeypatch.undo()
    shutil.rmtree(tmp_path / "host-a", ignore_errors=True)
    other = open_docs(encoder_dir, tmp_path, postgres_db, uploads="host-b")
    assert other.get("zebra.md").chunks == len(served_chunks(other, "zebra.md")) > 1
    assert other.registry.pending() == []


def test_a_write_finished_by_a_starting_replica_and_its_own_process_lands_once(
    encoder_dir, tmp_path, monkeypatch, registry_url
):
    """A replica (or worker) that starts while another is between steps 2 and 3 finishes that
    write from the kept file; the writer's own step 3 then finds its token gone and writes
    nothing, and its client is still told `created`."""
    docs = open_docs(encoder_dir, tmp_path, registry_url)
    real, finished_by = docs._apply_put, []

    def another_starts_first(doc_id, token, new):
        other = open_docs(
            encoder_dir,
            tmp_path,
            registry_url,
            uploads="uploads" if registry_url is None else "host-b",
        )
        finished_by.append(other.get(doc_id) is not None)
        return real(doc_id, token, new)

    monkeypatch.setattr(docs, "_apply_put", another_starts_first)
    info, status = put(docs, "zebra.md", ZEBRA.encode())
    assert finished_by == [True] and status == "created"
    assert docs.get("zebra.md") == info
    assert len(served_chunks(docs, "zebra.md")) == info.chunks and docs.registry.pending() == []


def test_a_pending_write_that_times_out_at_start_waits_for_the_next_start(
    encoder_dir, tmp_path, monkeypatch, registry_url
):
    """A parse past its time budget may be a busy start (every worker reconciling at once): the
    write stays pending, and is never dropped for it."""
    docs = open_docs(encoder_dir, tmp_path, registry_url)

    put_killed_before_its_chunks(docs, monkeypatch)

    def times_out(*args, **kwargs):
        raise ExtractError("parse_timeout", "too slow", status=422)

    monkeypatch.setattr(DocumentStore, "prepare", times_out)
    assert open_docs(encoder_dir, tmp_path, registry_url).registry.pending() != []
    monkeypatch.undo()
    assert open_docs(encoder_dir, tmp_path, registry_url).get("zebra.md").chunks > 1


def test_a_write_that_cannot_be_finished_is_dropped_but_never_a_newer_one(
    encoder_dir, tmp_path, monkeypatch, registry_url
):
    """Its kept file gone, a pending write is dropped at start; a newer write of the same id that
    came in meanwhile (another worker or replica) keeps its intent and lands."""
    docs = open_docs(encoder_dir, tmp_path, registry_url)

    put_killed_before_its_chunks(docs, monkeypatch)
    monkeypatch.undo()
    newer = []

    def gone_and_a_newer_write_starts(self, sha256):
        if not newer:  # between reading the pending rows and dropping this one
            new = docs.prepare(
                "zebra.md", SHORT, doc_id="zebra.md", title=None, topic="", media_type=None
            )
            with docs.registry.write() as tx:
                docs._keep(tx, SHORT, new.info.sha256)
                newer.append(
                    (
                        docs.registry.set_pending(
                            tx,
                            "zebra.md",
                            {
                                "op": "put",
                                "info": None,
                                "upload": {
                                    "file": "zebra.md",
                                    "sha256": new.info.sha256,
                                    "title": None,
                                    "topic": "",
                                    "media_type": None,
                                },
                                "stale": 0,
                            },
                        ),
                        new,
                    )
                )
        raise FileNotFoundError(sha256)

    monkeypatch.setattr(DocumentStore, "kept", gone_and_a_newer_write_starts)
    open_docs(encoder_dir, tmp_path, registry_url)
    monkeypatch.undo()
    token, new = newer[0]
    assert docs.registry.row("zebra.md").pending["token"] == token
    assert docs._apply_put("zebra.md", token, new)
    assert served_chunks(docs, "zebra.md") == ["Zebras are striped."]
