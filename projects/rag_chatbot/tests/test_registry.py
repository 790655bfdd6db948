"""The registry's databases (sqlite and Postgres) as the service meets them: writers take turns
and each sees the last one's commit, a writer killed holding the lock blocks nobody, a Postgres
URL's password stays out of logs and errors, and a Milvus index with a sqlite registry warns."""

import logging
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import psycopg
import pytest

from rag_chatbot.registry import Registry
from semantic_search.stores import open_store

from .conftest import ZEBRA
from .test_docstore import put, served_chunks


def test_writers_take_turns_and_each_sees_the_last_commit(tmp_path, registry_url):
    """The write lock (sqlite BEGIN IMMEDIATE, Postgres's advisory lock) orders writers, and a
    writer reads what the one before it committed (Postgres: READ COMMITTED after the lock; a
    snapshot taken before the wait would miss it). Readers do not wait for a writer."""
    registry = Registry(registry_url or tmp_path / "registry.sqlite")
    inside, order = threading.Event(), []

    def first() -> None:
        with registry.write() as tx:
            inside.set()
            time.sleep(0.5)
            registry.set_pending(tx, "doc", {"op": "put", "info": None, "upload": None, "stale": 0})
            order.append("first commits")

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(10)
    t0 = time.perf_counter()
    assert registry.get("doc") is None and registry.page(10, 0) == (0, [])
    assert time.perf_counter() - t0 < 0.3  # a read is not held up by the writer
    with registry.write() as tx:
        order.append("second writes")
        row = registry.row("doc", tx)
    thread.join()
    assert order == ["first commits", "second writes"]
    assert row is not None and row.pending["op"] == "put"


HOLD_THE_LOCK = """
import sys, time
from rag_chatbot.registry import Registry
with Registry(sys.argv[1]).write():
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_writer_killed_holding_the_lock_does_not_block_the_others(tmp_path, registry_url):
    """SIGKILL inside a write transaction: the lock goes with the process (the OS drops sqlite's
    file lock; Postgres ends the session and its transaction-level lock)."""
    location = registry_url or str(tmp_path / "registry.sqlite")
    registry = Registry(location)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, location], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        holder.kill()
        holder.wait(10)
        t0 = time.perf_counter()
        with registry.write() as tx:
            registry.set_pending(tx, "doc", {"op": "delete", "stale": 0})
        assert time.perf_counter() - t0 < 5
        assert registry.pending()[0].id == "doc"
    finally:
        holder.kill()


def test_a_postgres_password_stays_out_of_logs_settings_and_errors(
    encoder_dir, tmp_path, caplog, postgres_db
):
    from rag_chatbot.service import open_documents
    from rag_chatbot.settings import Settings

    password = urlsplit(postgres_db).password
    settings = Settings(
        encoder_dir=encoder_dir,
        index_uri=str(tmp_path / "index"),
        uploads_dir=tmp_path / "uploads",
        corpus_index=None,
        registry=postgres_db,
    )
    assert password not in repr(settings) and password not in str(settings.model_dump())
    with caplog.at_level(logging.INFO):
        open_documents(settings)
    assert "document registry: postgresql://mlstack:***@127.0.0.1" in caplog.text
    assert password not in caplog.text
    # libpq quotes what it cannot parse: a password with a bad %-escape, in its error message
    bad = postgres_db.replace(password, password + "%zz")
    with pytest.raises(psycopg.Error) as error:
        Registry(bad)
    assert "invalid percent-encoded token" in str(error.value) and password not in str(error.value)
    assert error.value.__context__ is None and error.value.__cause__ is None
    with pytest.raises(psycopg.OperationalError) as error:
        Registry(postgres_db.replace(password, "wrong"))
    assert "password authentication failed" in str(error.value)


@pytest.mark.parametrize("registry", ["sqlite", "postgres"])
def test_a_milvus_index_with_a_local_sqlite_registry_warns_that_it_is_for_one_replica(
    encoder_dir, tmp_path, monkeypatch, caplog, registry, request
):
    """Replicas on several hosts cannot share a sqlite file: the service says so at start when
    the index is Milvus (a shared store) and the registry sqlite. With a Postgres registry it
    says nothing, and a Milvus index (`local=False`: no seeding, nothing imported from beside
    the index) opens and writes."""
    from rag_chatbot import service
    from rag_chatbot.settings import Settings

    lance = str(tmp_path / "milvus-stand-in")
    monkeypatch.setattr(service, "open_store", lambda uri, dim: open_store(lance, dim))
    url = request.getfixturevalue("postgres_db") if registry == "postgres" else None
    settings = Settings(
        encoder_dir=encoder_dir,
        index_uri="http://milvus:19530",
        corpus_index=None,
        uploads_dir=tmp_path / "uploads",
        registry=url,
        chunk_tokens=40,
    )
    with caplog.at_level(logging.WARNING):
        _, docs = service.open_documents(settings)
    warned = "RAG_CHATBOT_REGISTRY=postgresql://" in caplog.text
    assert warned == (registry == "sqlite")
    assert docs.registry.imported() and docs.registry.keeps_files == (registry == "postgres")
    put(docs, "zebra.md", ZEBRA.encode())
    assert len(served_chunks(docs, "zebra.md")) == docs.get("zebra.md").chunks > 1


def test_the_registry_setting_is_a_sqlite_path_or_a_postgres_url(tmp_path):
    """The default sits beside the uploads; it used to be `<index uri>/manifest.json`, i.e.
    `http:/host:19530/manifest.json` with a Milvus index."""
    from rag_chatbot.service import registry_location
    from rag_chatbot.settings import Settings

    settings = Settings(index_uri="http://milvus:19530", uploads_dir=tmp_path / "uploads")
    assert registry_location(settings) == tmp_path / "uploads" / "registry.sqlite"
    explicit = Settings(index_uri="http://milvus:19530", registry=str(tmp_path / "r.sqlite"))
    assert registry_location(explicit) == tmp_path / "r.sqlite"
    url = "postgresql://rag:pw@db:5432/rag"
    assert registry_location(Settings(registry=url)) == url
