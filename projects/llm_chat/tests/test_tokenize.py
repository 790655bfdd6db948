"""`/tokenize` and `/detokenize` over HTTP: the counts the chat route itself uses (a plain
prompt, a chat through the template, tools described), the text back, and 4xx for ids outside
the vocabulary, both or neither of prompt and messages, and oversized input."""

import httpx
import pytest
from transformers import AutoTokenizer

from llm_chat.testing import tiny_app
from mlstack.testing import live_server

CHAT = [{"role": "user", "content": "Tell me about Paris."}]
TOOL = {"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def url(tiny_llama):
    with live_server(tiny_app(tiny_llama)) as base:
        yield base


def post(url: str, path: str, **body) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=30)


def test_a_prompt_counts_as_the_tokenizer_counts(url, tiny_llama):
    got = post(url, "/tokenize", prompt="Paris is", return_token_strs=True).json()
    want = AutoTokenizer.from_pretrained(tiny_llama)("Paris is")["input_ids"]
    assert got["tokens"] == want and got["count"] == len(want) and got["max_model_len"] == 512
    assert "".join(got["token_strs"]) == "Paris is"


def test_a_chat_counts_what_the_chat_route_prefills(url):
    counted = post(url, "/tokenize", messages=CHAT).json()["count"]
    answer = httpx.post(
        url + "/v1/chat/completions", timeout=30, json={"messages": CHAT, "max_tokens": 1}
    ).json()
    assert counted == answer["usage"]["prompt_tokens"]
    with_tools = post(url, "/tokenize", messages=CHAT, tools=[TOOL]).json()["count"]
    answer = httpx.post(
        url + "/v1/chat/completions",
        timeout=30,
        json={"messages": CHAT, "max_tokens": 1, "tools": [TOOL]},
    ).json()
    assert with_tools == answer["usage"]["prompt_tokens"] > counted


def test_detokenize_gives_the_text_back(url):
    tokens = post(url, "/tokenize", prompt="The Seine flows through Paris.").json()["tokens"]
    assert post(url, "/detokenize", tokens=tokens).json() == {
        "prompt": "The Seine flows through Paris."
    }


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/detokenize", {"tokens": [10**6]}, 400, "tokens"),
        ("/detokenize", {"tokens": [-1]}, 422, "tokens.0"),
        ("/detokenize", {"tokens": [1] * 40_000}, 422, "tokens"),
        ("/tokenize", {}, 400, "prompt"),
        ("/tokenize", {"prompt": "a", "messages": CHAT}, 400, "prompt"),
        ("/tokenize", {"prompt": "a" * 10**6}, 422, "prompt"),
        ("/tokenize", {"prompt": "a", "tools": [TOOL]}, 400, "tools"),
        ("/tokenize", {"prompt": "a", "add_special_tokens": True}, 400, "add_special_tokens"),
    ],
)
def test_bad_requests_are_4xx_naming_the_field(url, path, body, status, param):
    response = post(url, path, **body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
