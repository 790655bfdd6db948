"""Ingestion from each format, and an interrupted ingestion that keeps what it acknowledged."""

import json
import os
import signal
import subprocess
import sys

import pytest

from semantic_search.encoder import Encoder
from semantic_search.ingest import IngestError, read_documents
from semantic_search.stores import open_store


def test_jsonl_csv_and_folder(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"id": "1", "text": "Alpha", "topic": "t", "lang": "en"})
        + "\n\n"
        + json.dumps({"id": "2", "text": "Beta", "date": "2024-05-01"})
        + "\n"
    )
    docs = list(read_documents(tmp_path / "a.jsonl"))
    assert [d.id for d in docs] == ["1", "2"] and docs[0].metadata == {"lang": "en"}
    assert str(docs[1].date) == "2024-05-01"

    (tmp_path / "b.csv").write_text("id,text,topic,author\n7,Gamma ray,physics,Curie\n")
    (doc,) = read_documents(tmp_path / "b.csv")
    assert (doc.id, doc.topic, doc.metadata) == ("7", "physics", {"author": "Curie"})

    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.md").write_text("# Heading here\n\nBody text.")
    (folder / "y.txt").write_text("Plain file.")
    (folder / "empty.md").write_text("   ")
    (folder / "image.png").write_bytes(b"\x89PNG")
    docs = {d.id: d for d in read_documents(folder)}
    assert set(docs) == {"sub/x.md", "y.txt"} and docs["sub/x.md"].title == "Heading here"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "1"}\n', "text"),
        ('{"id": "1", "text": "ok"}\n{bad\n', ":2: invalid JSON"),
        ('{"id": "", "text": "x"}\n', "id"),
    ],
)
def test_bad_records_name_file_and_line(tmp_path, content, message):
    (tmp_path / "d.jsonl").write_text(content)
    with pytest.raises(IngestError, match=message):
        list(read_documents(tmp_path / "d.jsonl"))


def test_interrupted_ingestion_keeps_acknowledged_documents(tmp_path, encoder_dir):
    source = tmp_path / "many.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": f"doc-{i}", "text": f"document number {i} " * 20}) + "\n"
            for i in range(20_000)
        )
    )
    index = tmp_path / "index"
    cmd = [
        sys.executable,
        "-m",
        "semantic_search.cli",
        "ingest",
        str(source),
        "--index",
        str(index),
        "--encoder",
        str(encoder_dir),
        "--batch-size",
        "100",
    ]
    # in tmp_path: no champion index there to seed the new index from (the CLI's default)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    acked = 0
    for line in proc.stdout:
        if line.startswith("acknowledged"):
            acked = int(line.split()[1])
            if acked >= 300:
                proc.send_signal(signal.SIGKILL)  # no clean-up of any kind
                break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and acked >= 300
    store = open_store(str(index), Encoder(encoder_dir).dim)
    count = store.count()
    assert acked <= count < 20_000
    assert len(store.get([f"doc-{i}" for i in range(acked)])) == acked
    assert store.dense(Encoder(encoder_dir).encode(["document number 5"])[0], 3)  # still searchable
