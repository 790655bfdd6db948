"""The OpenAI-compatible chat server: `/v1/chat/completions`, `/v1/completions`, `/v1/models`.

Run: `llm-chat serve` (settings from `LLM_CHAT_*` variables or `.env`). One process holds the
model; concurrency comes from the engine's continuous batching, not from uvicorn workers.
"""

import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from llm_chat import metrics
from llm_chat.engine import Delta, Engine, QueueFullError
from llm_chat.safety import SafetyFilter
from llm_chat.schemas import ChatRequest, CompletionRequest
from mlstack.serve import APIError, Hub, ModelCard, ServeSettings, create_app

STATIC = Path(__file__).parent / "static"


class Settings(ServeSettings):
    model_config = SettingsConfigDict(env_prefix="LLM_CHAT_", env_file=".env", extra="ignore")

    port: int = 8003
    workers: int = Field(1, ge=1, le=1, description="One process holds the model and its cache.")
    model_dir: Path = Field(Path("models/llm_chat/base"), description="A Hugging Face folder.")
    model_name: str = Field("smollm2-135m-instruct", description="The id clients pass as `model`.")
    backend: str = Field(
        "auto",
        description="auto (native for Llama-family models, else "
        "transformers) | native | native-int8 | transformers | llama.cpp",
    )
    gguf: Path | None = Field(None, description="llama.cpp's model file; default: the packaged one")
    onnx_dir: Path = Field(Path("models/llm_chat/onnx"), description="for the onnx backends")
    slots: int = Field(8, ge=1, le=256, description="Requests decoded together.")
    context_tokens: int = Field(2048, ge=16, description="Prompt + output per request.")
    max_queue: int = Field(64, ge=0, description="Waiting requests before 503 + Retry-After.")
    default_max_tokens: int = Field(512, ge=1)
    threads: int = Field(0, ge=0, description="Torch threads; 0 = all cores.")
    blocked_topics: list[str] = Field(default_factory=list, description="Words that refuse.")
    redact_pii: bool = Field(True, description="Mask e-mails, phone and card numbers.")
    refuse_prompt_injection: bool = True


class ChatModel:
    """The engine as a served model: it schedules its own batches, so no micro-batcher."""

    predict_batch = None

    def __init__(self, settings: Settings) -> None:
        from transformers import AutoTokenizer, GenerationConfig

        from llm_chat.backends import load_backend

        started = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(settings.model_dir)
        backend = load_backend(settings.backend, settings.model_dir, slots=settings.slots,
                               max_len=settings.context_tokens, threads=settings.threads,
                               gguf=settings.gguf, onnx_dir=settings.onnx_dir)  # fmt: skip
        eos = {self.tokenizer.eos_token_id}
        try:
            configured = GenerationConfig.from_pretrained(settings.model_dir).eos_token_id
            eos |= set(configured if isinstance(configured, list) else [configured])
        except OSError:
            pass
        self.engine = Engine(backend, self.tokenizer, eos=eos - {None},
                             max_queue=settings.max_queue, observer=metrics.PrometheusObserver())  # fmt: skip
        self.context = backend.max_len
        self.card = ModelCard(
            settings.model_name, "1", path=str(settings.model_dir),
            load_seconds=time.perf_counter() - started,
            extra={"backend": backend.name, "context_tokens": backend.max_len, "slots": backend.slots},
        )  # fmt: skip

    def warmup(self) -> None:
        import threading

        from llm_chat.sampling import SamplingParams

        finished = threading.Event()
        prompt = self.tokenizer("Hello")["input_ids"]
        params = SamplingParams(max_tokens=2, temperature=0)
        self.engine.submit(prompt, params, lambda d: d.finish_reason and finished.set())
        if not finished.wait(timeout=300):
            raise TimeoutError("warm-up generation did not finish in 300 s")

    def close(self) -> None:
        self.engine.stop()


router = APIRouter(prefix="/v1", tags=["chat"])


def _model(hub: Hub, name: str | None) -> ChatModel:
    # OpenAI clients always send a model; an unknown one is a 404 that lists the loaded ones.
    return hub.get(name).model


def _prompt_tokens(model: ChatModel, body: ChatRequest | CompletionRequest) -> list[int]:
    if isinstance(body, ChatRequest):
        messages = [{"role": m.role if m.role != "developer" else "system", "content": m.text()}
                    for m in body.messages]  # fmt: skip
        return model.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    return model.tokenizer(body.prompt)["input_ids"]


def _output_limit(model: ChatModel, settings: Settings, body, prompt: list[int]) -> int:
    """The 400s for a prompt or a max_tokens the context cannot hold, with the numbers."""
    room = model.context - len(prompt)
    if room <= 0:
        raise APIError(400, "context_length_exceeded",
                       f"the prompt has {len(prompt)} tokens; this model's context is "
                       f"{model.context} tokens", param="messages", limit=model.context)  # fmt: skip
    asked = body.output_limit
    if asked is not None and asked > room:
        raise APIError(400, "context_length_exceeded",
                       f"max_tokens {asked} + {len(prompt)} prompt tokens exceed this model's "
                       f"context of {model.context} tokens (at most {room} here)",
                       param="max_tokens", limit=room)  # fmt: skip
    return asked or min(settings.default_max_tokens, room)


async def _generate(request: Request, hub: Hub, body, kind: str):
    settings: Settings = request.app.state.settings
    safety: SafetyFilter = request.app.state.safety
    model = _model(hub, body.model)
    body = safety.screen_input(body)  # refuses (400) or returns the body with PII masked
    prompt = _prompt_tokens(model, body)
    params = body.sampling(_output_limit(model, settings, body, prompt))
    try:
        deltas = model.engine.stream(prompt, params)
        first = await anext(deltas)  # queue refusals surface here, before any bytes are sent
    except QueueFullError as exc:
        raise APIError(503, "overloaded", f"server busy: {exc}; retry shortly",
                       limit=settings.max_queue, headers={"Retry-After": "1"}) from None  # fmt: skip
    meta = {"id": f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()), "model": model.card.name}  # fmt: skip
    if body.stream:
        events = _sse(first, deltas, meta, kind, len(prompt), body, safety)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})  # fmt: skip
    text, last = "", first
    async for delta in _all(first, deltas):
        text, last = text + delta.text, delta
    text, refused = safety.screen_output(text)
    finish = "content_filter" if refused else last.finish_reason
    usage = _usage(len(prompt), last.tokens)
    if kind == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "finish_reason": finish, "logprobs": None}  # fmt: skip
        return {**meta, "object": "chat.completion", "choices": [choice], "usage": usage}
    choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
    return {**meta, "object": "text_completion", "choices": [choice], "usage": usage}


def _usage(prompt: int, output: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}


async def _sse(first: Delta, deltas: AsyncIterator[Delta], meta: dict, kind: str, prompt: int,
               body, safety: SafetyFilter) -> AsyncIterator[str]:  # fmt: skip
    """OpenAI's stream: a role chunk, content chunks, a finish chunk, usage if asked, [DONE]."""
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def chunk(text: str | None, finish: str | None, role: bool = False) -> str:
        if kind == "chat":
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if text:
                delta["content"] = text
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        return f"data: {json.dumps({**meta, 'object': obj, 'choices': [choice]})}\n\n"

    if kind == "chat":
        yield chunk(None, None, role=True)
    screen = safety.output_stream()
    last, finish = first, None
    try:
        async for last in _all(first, deltas):
            piece, refused = screen.push(last.text, final=bool(last.finish_reason))
            if piece:
                yield chunk(piece, None)
            if refused:
                finish = "content_filter"
                break
        yield chunk(None, finish or last.finish_reason)
        if body.stream_options and body.stream_options.include_usage:
            usage = {**meta, "object": obj, "choices": [], "usage": _usage(prompt, last.tokens)}
            yield f"data: {json.dumps(usage)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        await deltas.aclose()  # a client that hung up cancels its request in the engine


async def _all(first: Delta, deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    yield first
    if not first.finish_reason:
        async for delta in deltas:
            yield delta


@router.post("/chat/completions")
async def chat_completions(body: ChatRequest, request: Request, hub: Hub):
    """Chat with the model; `stream: true` answers with server-sent events."""
    return await _generate(request, hub, body, "chat")


@router.post("/completions")
async def completions(body: CompletionRequest, request: Request, hub: Hub):
    """Plain text completion of `prompt` (no chat template)."""
    return await _generate(request, hub, body, "completion")


def build_app(settings: Settings) -> FastAPI:
    app = create_app(title="llm-chat", settings=settings, demo_dir=STATIC,
                     load_models=lambda: [ChatModel(settings)])  # fmt: skip
    app.state.safety = SafetyFilter(blocked_topics=settings.blocked_topics,
                                    redact_pii=settings.redact_pii,
                                    refuse_injection=settings.refuse_prompt_injection)  # fmt: skip
    app.include_router(router)
    return app


def app_factory() -> FastAPI:
    """Zero-argument factory for uvicorn (`--factory`): settings from the environment."""
    return build_app(Settings())
