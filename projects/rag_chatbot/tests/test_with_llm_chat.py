"""End to end with the real LLM chat app (a tiny random Llama) as the generator: the RAG service
talks to it over HTTP through the OpenAI client, plain and streamed."""

import json

import httpx
import pytest

from llm_chat.service import Settings as ChatSettings
from llm_chat.service import build_app as build_chat_app
from llm_chat.testing import save_tiny_llama
from mlstack.testing import live_server
from rag_chatbot.service import Settings, build_app

from .conftest import ZEBRA


@pytest.fixture(scope="module")
def rag_url(encoder_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    llama = save_tiny_llama(tmp / "llama")
    chat = ChatSettings(model_dir=llama, model_name="tiny", slots=2, context_tokens=512)
    with live_server(build_chat_app(chat)) as chat_url:
        settings = Settings(
            encoder_dir=encoder_dir,
            index_uri=str(tmp / "index"),
            corpus_index=None,
            uploads_dir=tmp / "uploads",
            generator_url=chat_url + "/v1",
            generator_tokenizer=str(llama),
            context_tokens=200,
            answer_tokens=16,
            chunk_tokens=40,
            mode="bm25",
            min_relevance=-1,
            diversify=None,
        )
        with live_server(build_app(settings)) as url:
            httpx.post(
                url + "/v1/documents", files={"file": ("zebra.md", ZEBRA.encode(), "text/markdown")}
            )
            yield url


def test_chat_generates_through_the_llm_chat_service(rag_url):
    r = httpx.post(
        rag_url + "/v1/chat",
        timeout=120,
        json={"messages": [{"role": "user", "content": "What do zebras eat?"}]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sources"] and "generation" in body["timings_ms"]
    assert sum(s["tokens"] for s in body["sources"]) <= 200
    assert isinstance(body["answer"], str) and body["answer"]


def test_streamed_chat_through_the_llm_chat_service(rag_url):
    body = {"messages": [{"role": "user", "content": "How far do zebras migrate?"}], "stream": True}
    with httpx.stream("POST", rag_url + "/v1/chat", json=body, timeout=120) as r:
        assert r.status_code == 200
        blocks = r.read().decode().strip().split("\n\n")
    kinds = [b.split("\n")[0].removeprefix("event: ") for b in blocks]
    assert kinds[0] == "retrieval" and kinds[-1] == "answer" and "delta" in kinds
    final = json.loads(blocks[-1].split("\n")[1].removeprefix("data: "))
    assert final["sources"][0]["doc_id"] == "zebra.md"
