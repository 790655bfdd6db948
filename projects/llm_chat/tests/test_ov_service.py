"""The service on the openvino backend (the tiny Llama exported in the test, see conftest): the
same OpenAI API and answers as native, streaming, refusals as 400s naming the parameter; and
`auto` serves OpenVINO only where an export of the served model exists, native otherwise."""

import json
import logging

import httpx
import pytest

from llm_chat.testing import tiny_app
from mlstack.testing import live_server

pytest.importorskip("openvino_genai")

BODY = {
    "messages": [{"role": "user", "content": "Tell me about Paris."}],
    "max_tokens": 16,
    "temperature": 0,
}


@pytest.fixture(scope="module")
def ov_url(tiny_llama, tiny_ov):
    # f32: the CPU plugin's bf16 kernels fault on the tiny model's 16-wide heads.
    with live_server(
        tiny_app(tiny_llama, backend="openvino", ov_dir=tiny_ov, ov_precision="f32")
    ) as url:
        yield url


def answer(url: str, **extra) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=BODY | extra, timeout=60)


def test_openvino_serves_the_native_backends_answers(ov_url, tiny_llama):
    with live_server(tiny_app(tiny_llama)) as native_url:
        want = answer(native_url).json()
    got = answer(ov_url).json()
    assert got["choices"][0]["message"] == want["choices"][0]["message"]
    # OpenVINO does not tell which prompt tokens its prefix cache held; native does.
    assert want["usage"].pop("prompt_tokens_details") == {"cached_tokens": 0}
    assert got["usage"] == want["usage"]
    (card,) = httpx.get(ov_url + "/v1/models").json()["data"]
    assert card["backend"] == "openvino-fp32"


def test_openvino_streams_the_plain_answer(ov_url):
    plain = answer(ov_url).json()["choices"][0]["message"]["content"]
    with httpx.stream(
        "POST", ov_url + "/v1/chat/completions", json=BODY | {"stream": True}, timeout=60
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    chunks = [json.loads(line[6:]) for line in lines]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == plain
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"  # 16 tokens asked, 16 written


@pytest.mark.parametrize("name", ["presence_penalty", "frequency_penalty"])
def test_penalties_openvino_cannot_honour_are_a_400_naming_them(ov_url, name):
    refused = answer(ov_url, **{name: 0.5})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == name


def test_auto_serves_openvino_only_where_an_export_exists(tiny_llama, tiny_ov, tmp_path, caplog):
    from llm_chat.backends import load_backend

    caplog.set_level(logging.INFO, logger="llm_chat")
    native = load_backend("auto", tiny_llama, slots=1, max_len=64, ov_dir=tmp_path / "none")
    assert native.name == "native" and "no OpenVINO export" in caplog.text
    ov = load_backend("auto", tiny_llama, slots=1, max_len=64, ov_dir=tiny_ov, ov_precision="f32")
    assert ov.name == "openvino-fp32"
