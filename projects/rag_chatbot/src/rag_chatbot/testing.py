"""Test helpers: a fake OpenAI-compatible generator (it answers at once, the way a well-behaved
model would, so what is measured or asserted is our side of the call), and the service on tiny
models with nothing downloaded:

    python -m rag_chatbot.testing /tmp/rag-tiny --port 8004 [--api-key KEY] [--workers 2]

builds a tiny random-weight encoder in the folder (once), starts the fake generator on a free
port and serves the RAG API on the port (`tiny_settings` does the same in tests).
"""

import asyncio
import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from mlstack.testing import live_server, serve_tiny_workers
from rag_chatbot import prompts
from rag_chatbot.expansion import PROMPT

HYDE_SUFFIX = PROMPT.removeprefix("{question}")


class FakeLLM:
    """Answers prompts the way a well-behaved model would: the first sentence of source [1] with
    `[1]`; rewrites as "<first user question> <last question>". `reply` overrides the answer,
    `status` answers with that HTTP error, `fail_midway` breaks a stream after its first piece,
    `delay_s` waits that long before answering (a slow generator)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.reply: str | None = None
        self.hyde_reply = ""
        self.status = 200
        self.fail_midway = False
        self.delay_s = 0.0

    def answer(self, messages: list[dict]) -> str:
        if len(messages) == 1 and messages[0]["content"].endswith(HYDE_SUFFIX):
            return self.hyde_reply  # a HyDE expansion (expansion.py): a one-sentence answer
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
            return {
                "object": "list",
                "data": [{"id": "fake-llm", "object": "model", "created": 0, "owned_by": "tests"}],
            }

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            self.requests.append(body)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.status != 200:
                error = {"message": "overloaded", "type": "server_error", "code": None}
                return JSONResponse({"error": error}, status_code=self.status)
            text = self.answer(body["messages"])
            meta = {"id": "chatcmpl-1", "created": 0, "model": body["model"]}
            if not body.get("stream"):
                return JSONResponse(
                    {
                        **meta,
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                    }
                )

            def events():
                for piece in re.findall(r"\S+\s*", text):
                    delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                    chunk = {**meta, "object": "chat.completion.chunk", "choices": [delta]}
                    yield f"data: {json.dumps(chunk)}\n\n"
                    if self.fail_midway:  # how OpenAI-compatible servers report a failed stream
                        yield f"data: {json.dumps({'error': {'message': 'engine died'}})}\n\n"
                        return
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        return app


def tiny_settings(folder: Path, generator_url: str, **overrides):
    """Service settings over a tiny encoder built in `folder/encoder` (once) and an index,
    uploads and registry under `folder`; no corpus."""
    from rag_chatbot.settings import Settings
    from semantic_search.testing import tiny_encoder

    folder = Path(folder)
    encoder = tiny_encoder(folder)
    fields = {
        "encoder_dir": encoder,
        "index_uri": str(folder / "index"),
        "corpus_index": None,
        "uploads_dir": folder / "uploads",
        "generator_url": generator_url,
        "generator_tokenizer": str(encoder),
        "chunk_tokens": 40,
        "overlap_tokens": 0,
        "max_upload_bytes": 200_000,
        "max_pages": 5,
        "serving_card": None,  # these settings, not the checkout's champion card
    }
    return Settings(**{**fields, **overrides})


def schemathesis_media_types() -> None:
    """Teaches schemathesis what a valid upload is (file contents are beyond a JSON schema).

    The file part's bytes come from the schema's `format: binary` (random bytes, or a PNG or ZIP
    sample) while its Content-Type is drawn from the `encoding` list on its own, so a case meant
    to be valid could send a PNG as `application/pdf`. In such cases the bytes are replaced by a
    file of the chosen type: a short text, or a one-page PDF of one."""
    import hashlib

    import schemathesis

    @schemathesis.hook
    def map_case(context, case):
        meta, body = case.meta, case.body
        if (
            case.operation.path == "/v1/documents"
            and case.operation.method.upper() == "POST"
            and meta is not None
            and meta.generation.mode.is_positive
            and isinstance(body, dict)
            and "file" in body
        ):
            # pin the part's type too: it may be drawn later, at serialization
            kind = (case.multipart_content_types or {}).get("file", "text/plain")
            case.multipart_content_types = {**(case.multipart_content_types or {}), "file": kind}
            drawn = getattr(body["file"], "data", body["file"])  # bytes arrive wrapped (Binary)
            seed = drawn if isinstance(drawn, bytes) else str(drawn).encode()
            text = "Upload " + hashlib.sha256(seed).hexdigest()[:12]
            body["file"] = pdf_bytes(text) if kind == "application/pdf" else text.encode()
        return case


def pdf_bytes(text: str) -> bytes:
    """A one-page PDF holding `text` (fpdf2, a dev dependency)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


@contextlib.contextmanager
def _settings_with_fake_llm(folder: Path, **overrides) -> Iterator:
    """`tiny_settings` with the fake generator serving in this process until the service ends,
    from `folder` as the working directory."""
    with live_server(FakeLLM().app(), wait_ready=False) as url:
        folder = folder.resolve()
        settings = tiny_settings(folder, url + "/v1", **overrides)
        os.chdir(folder)  # relative defaults left out of the environment resolve to nothing
        yield settings


def main() -> None:
    serve_tiny_workers(
        "The RAG service on tiny models (tests, fuzzing).",
        8004,
        "rag_chatbot.service:app_factory",
        _settings_with_fake_llm,
    )


if __name__ == "__main__":
    main()
