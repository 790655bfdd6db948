"""A fake OpenAI-compatible generator for tests and the service benchmark: it answers at once,
the way a well-behaved model would, so what is measured or asserted is our side of the call."""

import json
import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from rag_chatbot import prompts


class FakeLLM:
    """Answers prompts the way a well-behaved model would: the first sentence of source [1] with
    `[1]`; rewrites as "<first user question> <last question>". `reply` overrides the answer,
    `status` answers with that HTTP error, `fail_midway` breaks a stream after its first piece."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.reply: str | None = None
        self.status = 200
        self.fail_midway = False

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
            if self.status != 200:
                error = {"message": "overloaded", "type": "server_error", "code": None}
                return JSONResponse({"error": error}, status_code=self.status)
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
                    if self.fail_midway:  # how OpenAI-compatible servers report a failed stream
                        yield f"data: {json.dumps({'error': {'message': 'engine died'}})}\n\n"
                        return
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        return app
