"""LanceDB with several writers on one folder, as several uvicorn workers use it."""

import subprocess
import sys
import time

from semantic_search.documents import Document
from semantic_search.stores import open_store

from .conftest import unit_vectors

DIM = 8


# Each process sleeps until the same instant, then opens (and so creates) the table.
OPEN_AT_ONCE = f"""
import sys, time
from semantic_search.stores import open_store
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
print(open_store(sys.argv[1], {DIM}).count())
"""


def test_workers_creating_the_table_at_once_all_open_it(tmp_path):
    path = str(tmp_path / "index")
    start = str(time.time() + 4)  # after every interpreter has imported LanceDB
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT_ONCE, path, start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [(p.returncode, out.strip()) for p, (out, _) in zip(procs, outcomes, strict=True)] == [
        (0, "0")
    ] * 4, [err[-300:] for _, err in outcomes]


def test_delete_counts_its_own_rows_while_another_worker_writes(tmp_path, corpus):
    path = str(tmp_path / "index")
    mine, other = open_store(path, DIM), open_store(path, DIM)
    mine.upsert(corpus[:5], unit_vectors(5, DIM))
    extra = [Document(id=f"other-{i}", text=f"written elsewhere {i}") for i in range(3)]
    delete = mine.table.delete

    def delete_then_other_worker_writes(where):
        result = delete(where)
        other.upsert(extra, unit_vectors(3, DIM, seed=1))  # lands before the count is read
        return result

    mine.table.delete = delete_then_other_worker_writes
    assert mine.delete([corpus[0].id, "no-such-id"]) == 1
    assert mine.count() == 5 - 1 + 3


def test_a_long_run_of_writes_reconnects_and_compacts_writer_and_reader(
    tmp_path, corpus, monkeypatch
):
    # A LanceDB connection keeps ~13 KB per table version it has seen, for good: 3,000 one-row
    # upserts grew a service by 38 MB (the soak's +17%). Every RECONNECT_VERSIONS versions the
    # writer compacts and both sides start a new connection; the data stays whole.
    from semantic_search.stores import lance

    monkeypatch.setattr(lance, "RECONNECT_VERSIONS", 5)
    path = str(tmp_path / "index")
    writer, reader = open_store(path, DIM), open_store(path, DIM)
    writer.upsert(corpus[:5], unit_vectors(5, DIM))
    first_writer, first_reader = writer.db, reader.db
    for n in range(12):
        writer.upsert([Document(id="soak", text=f"version {n}")], unit_vectors(1, DIM))
        assert [d.text for d in reader.get(["soak"])] == [f"version {n}"]
    assert writer.db is not first_writer and reader.db is not first_reader
    fragments = writer.table.stats()["fragment_stats"]["num_fragments"]
    assert fragments < 8  # 13 writes left 13 fragments before compaction
    assert writer.count() == reader.count() == 6


class _StaleVersion:
    """The table as a request thread saw it: its version read just before another worker's
    write landed (the read and the lock it then waits on are not one step)."""

    def __init__(self, table, version: int) -> None:
        self._table, self.version = table, version

    def __getattr__(self, name):
        return getattr(self._table, name)


def test_a_request_holding_an_older_version_never_rolls_the_copy_back(tmp_path, corpus):
    # Seen once in CI as a 500 on /v1/search under two workers writing and deleting: a thread
    # that read version v waited on the reload lock while another loaded v+1; it then reloaded
    # "v" with v+1's rows, and BM25, cached by version number, answered with v's index: row
    # numbers of five documents into a copy of two.
    path = str(tmp_path / "index")
    mine, other = open_store(path, DIM), open_store(path, DIM)
    mine.upsert(corpus[:5], unit_vectors(5, DIM))
    query = " ".join(d.text.split()[0] for d in corpus[:5])
    assert len(mine.text(query, 5)) > 2  # the copy and its BM25 index at version v
    seen = mine.table.version
    other.delete([d.id for d in corpus[2:5]])  # v+1 (another worker): two documents left
    mine.dense(unit_vectors(1, DIM)[0], 5)  # this worker's copy follows to v+1
    real = mine._mirror.table
    mine._mirror.table = _StaleVersion(real, seen)
    try:
        hits = mine.text(query, 5)
    finally:
        mine._mirror.table = real
    assert {h.document.id for h in hits} <= {d.id for d in corpus[:2]}
    assert mine._mirror.current().version == mine.table.version  # never rolled back


def test_a_failed_compaction_after_a_write_keeps_the_write_and_retries(
    tmp_path, corpus, monkeypatch
):
    # The compaction runs after the write's own commit: its failure (another worker compacting
    # at once, a full disk) used to turn an acknowledged write into a 500, and a retried delete
    # into a 404.
    from semantic_search.stores import lance

    monkeypatch.setattr(lance, "RECONNECT_VERSIONS", 3)
    store = open_store(str(tmp_path / "index"), DIM)
    store.upsert(corpus[:3], unit_vectors(3, DIM))
    optimize, calls = store.table.optimize, []

    def failing(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OSError("No space left on device")
        return optimize(**kwargs)

    monkeypatch.setattr(type(store.table), "optimize", lambda self, **kw: failing(**kw))
    first = store.db
    for n in range(3):
        store.upsert([Document(id=f"n{n}", text=f"note {n}")], unit_vectors(1, DIM))
    assert store.delete([corpus[0].id]) == 1  # acknowledged, not an error
    assert len(calls) >= 2 and store.db is not first  # retried on the next write, then moved on
    assert store.count() == 3 + 3 - 1
