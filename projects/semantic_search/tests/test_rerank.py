"""The cross-encoder reranker: a tiny BERT cross-encoder built from a config, exported by
`build_cross_encoder`, scored by ONNX Runtime as PyTorch scores it, and used by the service."""

from pathlib import Path

import httpx
import numpy as np
import pytest

from mlstack.testing import live_server
from semantic_search.encoder import Encoder
from semantic_search.indexing import index_documents
from semantic_search.rerank import CrossEncoderReranker
from semantic_search.service import build_app
from semantic_search.settings import Settings
from semantic_search.stores import open_store
from semantic_search.testing import save_tiny_cross_encoder

MAX_TOKENS = 48


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    return save_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))


@pytest.fixture(scope="module")
def reranker_dir(tiny_cross_encoder, tmp_path_factory) -> Path:
    from semantic_search.export import build_cross_encoder

    return build_cross_encoder(
        str(tiny_cross_encoder), tmp_path_factory.mktemp("reranker"), max_seq_length=MAX_TOKENS
    )


def torch_scores(model_dir: Path, query: str, passages: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    pairs = tokenizer(
        [query] * len(passages),
        passages,
        padding=True,
        truncation="only_second",
        max_length=MAX_TOKENS,
        return_tensors="pt",
    )
    with torch.inference_mode():
        return model(**pairs).logits[:, 0].numpy()


def test_onnx_scores_match_pytorch(tiny_cross_encoder, reranker_dir, corpus):
    # Short and long passages in one batch: padding, and truncation of the passage only.
    passages = ["A short one.", corpus[0].text, corpus[1].text[:80], corpus[2].text]
    query = "which painter worked in Paris"
    got = CrossEncoderReranker(reranker_dir, batch_size=3).score(query, passages)
    expected = torch_scores(tiny_cross_encoder, query, passages)
    assert got.shape == (len(passages),)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert CrossEncoderReranker(reranker_dir).score(query, []).shape == (0,)


def test_service_reranks_when_asked(reranker_dir, encoder_dir, corpus, tmp_path):
    index = tmp_path / "index"
    encoder = Encoder(encoder_dir)
    index_documents(open_store(str(index), encoder.dim), encoder, corpus, batch_size=32)
    settings = Settings(
        encoder_dir=encoder_dir,
        index_uri=str(index),
        reranker_dir=reranker_dir,
        monitor_dir=tmp_path / "monitor",
    )
    query = "music and painting"
    with live_server(build_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as http:
        r = http.post("/v1/search", json={"query": query, "k": 5, "rerank": True})
    assert r.status_code == 200, r.text
    hits = r.json()["results"]
    texts = {d.id: d.text for d in corpus}
    expected = CrossEncoderReranker(reranker_dir).score(query, [texts[h["id"]] for h in hits])
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    np.testing.assert_allclose(scores, expected, atol=1e-4)
