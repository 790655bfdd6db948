"""Readiness (no route reaches unloaded state) and the service's own index, apart from the
pipeline's and seeded from it."""

import subprocess
import sys
import time

import httpx
import pytest

from mlstack.testing import live_server
from semantic_search.encoder import Encoder
from semantic_search.indexing import index_documents
from semantic_search.service import build_app
from semantic_search.settings import Settings
from semantic_search.stores import open_store

ROUTES = [
    ("POST", "/v1/search", {"query": "music"}),
    ("POST", "/v1/embeddings", {"input": "music"}),
    ("POST", "/v1/documents", {"documents": [{"id": "d", "text": "t"}]}),
    ("GET", "/v1/documents/d", None),
    ("DELETE", "/v1/documents/d", None),
    ("GET", "/v1/stats", None),
]


def test_after_a_failed_load_every_route_is_503_and_liveness_fails(tmp_path):
    settings = Settings(
        encoder_dir=tmp_path / "no-encoder", index_uri=str(tmp_path / "index"), corpus_index=None
    )
    with live_server(build_app(settings), wait_ready=False) as base:
        deadline = time.monotonic() + 30
        while "failed" not in httpx.get(base + "/readyz").text and time.monotonic() < deadline:
            time.sleep(0.05)
        for method, path, body in ROUTES:
            r = httpx.request(method, base + path, json=body)
            assert r.status_code == 503, (path, r.text)
            assert r.headers["Retry-After"] and r.json()["error"]["code"] == "not_ready"
            assert "no-encoder" in r.json()["error"]["message"]
        assert httpx.get(base + "/healthz").status_code == 503  # a supervisor restarts it


@pytest.fixture(scope="module")
def corpus_index(encoder_dir, corpus, tmp_path_factory):
    index = tmp_path_factory.mktemp("pipeline") / "index"
    encoder = Encoder(encoder_dir)
    index_documents(open_store(str(index), encoder.dim), encoder, corpus, batch_size=32)
    return index


def test_the_service_writes_its_own_index_seeded_from_the_pipelines(
    encoder_dir, corpus, corpus_index, tmp_path
):
    assert Settings().index_uri != str(Settings().corpus_index)
    settings = Settings(
        encoder_dir=encoder_dir,
        index_uri=str(tmp_path / "service" / "index"),
        corpus_index=corpus_index,
    )
    doc = {"id": "upload/1", "text": "Axolotls regrow limbs."}
    with live_server(build_app(settings)) as base:
        assert httpx.get(base + "/v1/stats").json()["documents"] == len(corpus)
        assert httpx.post(base + "/v1/documents", json={"documents": [doc]}).status_code == 200
        assert httpx.get(base + "/v1/stats").json()["documents"] == len(corpus) + 1
    # The pipeline's index (what `ss_evaluate` measures) never sees the upload...
    pipeline = open_store(str(corpus_index), 32)
    assert pipeline.count() == len(corpus) and pipeline.get(["upload/1"]) == []
    # ...and a rebuilt pipeline index does not replace the service's (nor lose the upload).
    pipeline.delete([corpus[0].id])
    with live_server(build_app(settings)) as base:
        assert httpx.get(base + "/v1/stats").json()["documents"] == len(corpus) + 1
        assert httpx.get(base + "/v1/documents/upload/1").status_code == 200


SEED_AT_ONCE = """
import sys, time
from semantic_search.stores.seed import seed_index
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))
print(seed_index(sys.argv[1], sys.argv[2]))
"""


def test_workers_seeding_at_once_make_one_whole_copy(corpus_index, tmp_path):
    target = tmp_path / "index"
    start = str(time.time() + 3)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SEED_AT_ONCE, str(target), str(corpus_index), start],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    said = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert said == ["False", "False", "False", "True"]
    assert open_store(str(target), 32).count() == open_store(str(corpus_index), 32).count()
    assert [p.name for p in tmp_path.iterdir()] == ["index"]  # no half copies left behind


def test_an_index_of_another_encoders_vectors_refuses_to_start(encoder_dir, corpus_index, tmp_path):
    # A new champion with other weights against the service index the old one seeded: queries
    # would be compared with vectors of another model. The service stamps its index with the
    # encoder and refuses, naming the fix; the uploads in it stay where they are.
    import json
    import shutil

    settings = Settings(
        encoder_dir=encoder_dir, index_uri=str(tmp_path / "index"), corpus_index=corpus_index
    )
    with live_server(build_app(settings)) as base:
        assert httpx.get(base + "/v1/stats").status_code == 200
    stamp = json.loads((tmp_path / "index" / "encoder-stamp.json").read_text())
    assert stamp["variant"] == "int8" and len(stamp["sha256"]) == 64
    # the fp32 variant of the same model: the same vectors, allowed (and re-stamped)
    with live_server(build_app(settings.model_copy(update={"encoder_variant": "fp32"}))) as base:
        assert httpx.get(base + "/v1/stats").status_code == 200
    other = tmp_path / "other-encoder"  # the same model with one weight changed
    shutil.copytree(encoder_dir, other)
    model = other / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1] + bytes([model.read_bytes()[-1] ^ 1]))
    moved = settings.model_copy(update={"encoder_dir": other, "encoder_variant": "fp32"})
    with live_server(build_app(moved), wait_ready=False) as base:
        deadline = time.monotonic() + 30
        while "failed" not in httpx.get(base + "/readyz").text and time.monotonic() < deadline:
            time.sleep(0.05)
        message = httpx.get(base + "/v1/stats").json()["error"]["message"]
    assert "not of the encoder loaded now" in message and "re-seed" in message
    assert json.loads((tmp_path / "index" / "encoder-stamp.json").read_text())["variant"] == "fp32"


def test_an_empty_corpus_index_folder_is_an_error_not_an_empty_index(tmp_path):
    # Docker creates an empty folder for a bind mount whose source is missing (no champion yet):
    # seeding from it would give a service an empty index for good, never seeded again.
    from semantic_search.stores.seed import seed_index

    (tmp_path / "corpus").mkdir()
    with pytest.raises(FileNotFoundError, match="is empty"):
        seed_index(tmp_path / "index", tmp_path / "corpus")
    assert not (tmp_path / "index").exists()
    assert (
        seed_index(tmp_path / "index", tmp_path / "absent") is False
    )  # none configured: start empty
