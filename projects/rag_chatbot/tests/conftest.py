"""Fixtures: the tiny encoder of `semantic_search.testing`, PDFs written with fpdf2, and a fake
OpenAI-compatible generator on a real port that answers by quoting source [1] and citing it."""

import json
import re
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from mlstack.testing import live_server
from rag_chatbot import prompts
from semantic_search.testing import build_tiny_encoder

ZEBRA = """# Zebra field guide

Zebras are African equines with distinctive black-and-white striped coats. Their stripes come
in different patterns, unique to each individual.

## Migration

Every year, around 250,000 zebras migrate across the Serengeti with the wildebeest. The journey
covers about 500 kilometres and follows the rains.

## Diet

Zebras are grazers and eat mostly grasses, but also shrubs, herbs, twigs, leaves and bark.
"""


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


def make_pdf(pages: list[str], *, title: str | None = None, password: str | None = None) -> bytes:
    """A real PDF, one page per text (fpdf2), optionally AES-encrypted with a user password."""
    import io

    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    data = bytes(pdf.output())
    if password is None:
        return data
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=password, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


class FakeLLM:
    """Answers prompts the way a well-behaved model would: the first sentence of source [1] with
    `[1]`; rewrites as "<first user question> <last question>"; `reply` overrides the answer."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.reply: str | None = None

    def answer(self, messages: list[dict]) -> str:
        if messages[0]["content"] == prompts.REWRITE:
            turns = re.findall(r"^user: (.*)$", messages[1]["content"], flags=re.M)
            last = messages[1]["content"].rsplit("Last question: ", 1)[1]
            return f"{turns[0]} {last}"
        if self.reply is not None:
            return self.reply
        first = messages[1]["content"].split("[1] ", 1)[1].split("\n", 1)[1]
        return prompts.split_sentences(first)[0] + " [1]"

    def app(self) -> FastAPI:
        app = FastAPI()
        app.get("/healthz")(lambda: {"status": "ok"})

        @app.get("/v1/models")
        def models():
            return {"object": "list", "data": [{"id": "fake-llm", "object": "model", "created": 0,
                                                "owned_by": "tests"}]}  # fmt: skip

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            self.requests.append(body)
            text = self.answer(body["messages"])
            meta = {"id": "chatcmpl-1", "created": 0, "model": body["model"]}
            if not body.get("stream"):
                return JSONResponse({**meta, "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}]})  # fmt: skip

            def events():
                for piece in re.findall(r"\S+\s*", text):
                    delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                    yield f"data: {json.dumps({**meta, 'object': 'chat.completion.chunk', 'choices': [delta]})}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        return app


@pytest.fixture(scope="session")
def fake_llm():
    llm = FakeLLM()
    with live_server(llm.app(), wait_ready=False) as url:
        llm.url = url + "/v1"
        yield llm


@pytest.fixture
def reset_llm(fake_llm):
    fake_llm.reply = None
    fake_llm.requests.clear()
    return fake_llm
