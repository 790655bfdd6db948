"""`/v1/embeddings` driven by the clients people use: the `openai` SDK (base64 on the wire by
default), LangChain's `OpenAIEmbeddings` with text, and its default token-id input, which gets a
400 that says how to switch the client to text. `dimensions` other than the model's is a 400."""

import base64
import time

import httpx
import numpy as np
import openai
import pytest
import tiktoken
from langchain_openai import OpenAIEmbeddings

from mlstack.testing import live_server
from semantic_search.encoder import Encoder
from semantic_search.service import build_app
from semantic_search.settings import Settings

KEY = "test-key"
TEXTS = ["the first sentence", "a second one, about music and painting", "maths"]
HINT = "check_embedding_ctx_length=False"


@pytest.fixture(scope="module")
def base_url(encoder_dir, tmp_path_factory):
    settings = Settings(
        encoder_dir=encoder_dir,
        index_uri=str(tmp_path_factory.mktemp("oa") / "i"),
        corpus_index=None,
        api_key=KEY,
        max_wait_ms=2,
    )
    with live_server(build_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def model(base_url) -> str:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY).models.list().data[0].id


@pytest.fixture(scope="module")
def expected(encoder_dir) -> np.ndarray:
    return Encoder(encoder_dir).encode(TEXTS)


@pytest.fixture
def http(base_url):
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client


def test_openai_sdk_default_is_base64_and_decodes_to_the_vectors(base_url, model, expected, http):
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0)
    got = client.embeddings.create(model=model, input=TEXTS)  # the SDK asks for base64
    np.testing.assert_allclose([d.embedding for d in got.data], expected, atol=1e-5)
    wire = http.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": "base64"}).json()
    raw = np.frombuffer(base64.b64decode(wire["data"][1]["embedding"]), "<f4")
    np.testing.assert_allclose(raw, expected[1], atol=1e-5)
    same = client.embeddings.create(model=model, input=TEXTS, dimensions=expected.shape[1])
    np.testing.assert_allclose([d.embedding for d in same.data], expected, atol=1e-5)


def test_langchain_with_text_matches_the_service(base_url, model, expected, encoder_dir):
    lc = OpenAIEmbeddings(
        model=model,
        base_url=f"{base_url}/v1",
        api_key=KEY,
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    np.testing.assert_allclose(lc.embed_documents(TEXTS), expected, atol=1e-5)
    # Alone, not in a batch: INT8's dynamic activation scales depend on the batch (~4e-5).
    alone = Encoder(encoder_dir).encode([TEXTS[1]])[0]
    np.testing.assert_allclose(lc.embed_query(TEXTS[1]), alone, atol=1e-5)


def test_langchain_with_the_encoders_own_tokenizer_sends_text(
    base_url, model, expected, tiny_st_model
):
    """`tiktoken_enabled=False` chunks with a Hugging Face tokenizer and sends the chunks as
    text; named by a local folder (here the encoder's own tokenizer) it works offline."""
    lc = OpenAIEmbeddings(
        model=model,
        base_url=f"{base_url}/v1",
        api_key=KEY,
        max_retries=0,
        tiktoken_enabled=False,
        tiktoken_model_name=str(tiny_st_model),
    )
    np.testing.assert_allclose(lc.embed_documents(TEXTS), expected, atol=1e-5)


def test_langchain_default_token_ids_get_a_400_with_the_fix(base_url, model, monkeypatch):
    # LangChain tokenizes with tiktoken, whose cl100k_base is a download: a byte-level
    # encoding stands in offline, so the real default path sends real token-id arrays.
    byte_level = tiktoken.Encoding(
        "bytes",
        pat_str=r"\S+|\s+",
        special_tokens={},
        mergeable_ranks={bytes([i]): i for i in range(256)},
    )
    monkeypatch.setattr(tiktoken, "encoding_for_model", lambda name: byte_level)
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: byte_level)
    lc = OpenAIEmbeddings(model=model, base_url=f"{base_url}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        lc.embed_documents(TEXTS)
    assert err.value.status_code == 400 and err.value.body["param"] == "input"
    assert err.value.body["code"] == "token_ids_unsupported" and HINT in err.value.body["message"]


@pytest.mark.parametrize(
    "tokens",
    [[101, 2023, 102], [[101, 2023, 102], [101, 102]], [[]], [0] * 1_000_000],
    ids=["ids", "lists-of-ids", "empty-list", "a-million-ids"],
)
def test_token_id_arrays_are_a_400_answered_at_once(http, tokens):
    started = time.perf_counter()
    r = http.post("/v1/embeddings", json={"input": tokens}, timeout=30)
    assert time.perf_counter() - started < 1.0  # refused from the first item, nothing encoded
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"], err["type"]) == (
        "token_ids_unsupported",
        "input",
        "invalid_request_error",
    )
    assert HINT in err["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ["x", 1]}, "input.1"),
        ({"input": [True]}, "input.0"),
        ({"input": "x", "extra": 1}, "extra"),
    ],
)
def test_other_mistyped_input_is_still_a_422(http, body, param):
    r = http.post("/v1/embeddings", json=body)
    assert r.status_code == 422 and r.json()["error"]["param"] == param, r.text


def test_other_dimensions_are_a_400_naming_the_supported_one(base_url, model, expected):
    dim = expected.shape[1]
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=model, input="x", dimensions=dim // 2)
    body = err.value.body
    assert (body["code"], body["param"], body["limit"]) == (
        "unsupported_dimensions",
        "dimensions",
        dim,
    )
    lc = OpenAIEmbeddings(
        model=model,
        base_url=f"{base_url}/v1",
        api_key=KEY,
        max_retries=0,
        check_embedding_ctx_length=False,
        dimensions=dim // 2,
    )
    with pytest.raises(openai.BadRequestError, match=str(dim)):
        lc.embed_query("x")


def test_the_openapi_document_states_what_embeddings_take(http, expected):
    schema = http.get("/openapi.json").json()["components"]["schemas"]["EmbeddingsRequest"]
    props = schema["properties"]
    assert props["dimensions"]["anyOf"][0]["enum"] == [expected.shape[1]]
    assert props["encoding_format"]["enum"] == ["float", "base64"]
    assert HINT in props["input"]["description"]
    text, texts = props["input"]["oneOf"]  # the limits stay declared: no schemathesis surprise
    assert text["maxLength"] == 20_000 and texts["maxItems"] == 256
