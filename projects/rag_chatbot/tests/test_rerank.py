"""The service with a cross-encoder reranker (`RAG_CHATBOT_RERANKER_DIR`): a tiny one exported as
`semantic-search export-reranker` exports it orders the sources `/v1/retrieve` gives, scored
against the user's question."""

import httpx

from mlstack.testing import live_server
from rag_chatbot.service import build_app
from semantic_search.rerank import CrossEncoderReranker
from semantic_search.testing import build_tiny_reranker

from .conftest import ZEBRA
from .test_service import AUTH, settings_for

CATS = b"Cats sleep for twelve to sixteen hours a day. Cats purr. Cats hunt mice at night."


def test_the_service_orders_sources_by_its_reranker(encoder_dir, tmp_path, fake_llm):
    reranker_dir = build_tiny_reranker(tmp_path / "reranker")
    settings = settings_for(
        encoder_dir,
        tmp_path,
        fake_llm.url,
        reranker_dir=reranker_dir,
        mode="bm25",
        min_relevance=-1,
        diversify=None,
    )
    assert settings.rag_config().rerank
    question = "zebra cats stripes sleep migration"
    with live_server(build_app(settings)) as url, httpx.Client(base_url=url, headers=AUTH) as c:
        c.post("/v1/documents", files={"file": ("zebra.md", ZEBRA.encode(), "text/markdown")})
        c.post("/v1/documents", files={"file": ("cats.txt", CATS, "text/plain")})
        r = c.post("/v1/retrieve", json={"query": question, "k": 4})
    assert r.status_code == 200, r.text
    texts = [s["text"] for s in r.json()["sources"]]
    scores = CrossEncoderReranker(reranker_dir).score(question, texts)
    assert len(texts) == 4 and list(scores) == sorted(scores, reverse=True)
