"""The OpenAI-compatible chat server: `/v1/chat/completions`, `/v1/completions`, `/v1/models`.

Run: `llm-chat serve` (settings from `LLM_CHAT_*` variables or `.env`). One process holds the
model; concurrency comes from the engine's continuous batching, not from uvicorn workers.
"""

import asyncio
import time
import uuid
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from llm_chat import metrics
from llm_chat.choices import merge
from llm_chat.engine import Delta, QueueFullError
from llm_chat.logprobs import TokenText
from llm_chat.pipeline import default_model_dir
from llm_chat.planning import plan
from llm_chat.responses import Answer, client_gone, collect, sse, until_disconnected, within
from llm_chat.safety import SafetyFilter
from llm_chat.schemas import ChatRequest, CompletionRequest
from llm_chat.tokenize_api import router as tokenize_router
from llm_chat.validation import install_validation_handler
from mlstack.registry import installed_version
from mlstack.serve import (
    APIError,
    Hub,
    ModelCard,
    ServeSettings,
    create_app,
    error_responses,
    offload,
    requires,
)

STATIC = Path(__file__).parent / "static"


class Settings(ServeSettings):
    model_config = SettingsConfigDict(env_prefix="LLM_CHAT_", env_file=".env", extra="ignore")

    port: int = 8003
    # The largest valid request (131k characters, each up to 6 bytes as a JSON escape) is under
    # 1 MB; FastAPI parses the body on the event loop, so a bigger one is refused unread.
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    workers: int = Field(1, ge=1, le=1, description="One process holds the model and its cache.")
    model_dir: Path = Field(
        default_factory=default_model_dir,
        description="A Hugging Face folder; default: the fine-tuned champion llm_register "
        "installed (models/llm_chat/champion), else models/llm_chat/base.",
    )
    model_name: str = Field("smollm2-135m-instruct", description="The id clients pass as `model`.")
    backend: str = Field(
        "auto",
        description="auto (openvino where `ov_dir` holds an export, else native for Llama-family "
        "models, else transformers) | openvino | native | native-int8 | transformers | onnx | "
        "onnx-int8 | llama.cpp",
    )
    ov_dir: Path | None = Field(
        None,
        description="the openvino backend's export; default: openvino-int8 inside the model "
        "folder (a registered version), else openvino-int8 beside models/llm_chat/base, "
        "openvino-<name>-int8 beside any other model folder (the DVC stages' names)",
    )
    ov_precision: Literal["bf16", "f32"] | None = Field(
        None,
        description="OpenVINO's compute "
        "precision; default: the CPU plugin's "
        "(bf16 where the CPU has AMX or "
        "AVX512-BF16, else f32)",
    )
    gguf: Path | None = Field(None, description="llama.cpp's model file; default: the packaged one")
    onnx_dir: Path = Field(Path("models/llm_chat/onnx"), description="for the onnx backends")
    slots: int = Field(8, ge=1, le=256, description="Requests decoded together.")
    context_tokens: int = Field(2048, ge=16, description="Prompt + output per request.")
    max_queue: int = Field(
        64,
        ge=0,
        description="Requests that may wait beyond the free slots "
        "before 503 + Retry-After; 0 = none (start at once or 503).",
    )
    # A safety net for a stuck engine, above a full queue's legitimate wait (64 requests of 512
    # tokens over 8 slots: ~100 s on 2 cores).
    stall_timeout_s: float = Field(
        300.0,
        gt=0,
        description="A request that gets no token for "
        "this long ends: 504 before its first token, an error event "
        "in its stream after it.",
    )
    prefill_chunk_tokens: int = Field(
        256,
        ge=0,
        description="The native backends prefill a "
        "longer prompt this many tokens at a time between decode "
        "steps, so running streams keep their pace; 0 = in one "
        "pass. OpenVINO chunks by its own scheduler.",
    )
    default_max_tokens: int = Field(512, ge=1)
    threads: int = Field(0, ge=0, description="Torch (or OpenVINO) threads; 0 = all cores.")
    blocked_topics: list[str] = Field(default_factory=list, description="Words that refuse.")
    redact_pii: bool = Field(True, description="Mask e-mails, phone and card numbers.")
    refuse_prompt_injection: bool = True


class ChatModel:
    """The engine as a served model: it schedules its own batches, so no micro-batcher."""

    predict_batch = None

    def __init__(self, settings: Settings) -> None:
        from transformers import AutoTokenizer, GenerationConfig

        from llm_chat.ov_engine import engine_for

        started = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(settings.model_dir)
        eos = {self.tokenizer.eos_token_id}
        try:
            configured = GenerationConfig.from_pretrained(settings.model_dir).eos_token_id
            eos |= set(configured if isinstance(configured, list) else [configured])
        except OSError:
            pass
        loading = {
            "slots": settings.slots,
            "max_len": settings.context_tokens,
            "threads": settings.threads,
            "gguf": settings.gguf,
            "onnx_dir": settings.onnx_dir,
            "ov_dir": settings.ov_dir,
            "ov_precision": settings.ov_precision,
        }
        self.engine = engine_for(
            settings.backend,
            settings.model_dir,
            self.tokenizer,
            backend_options=loading,
            eos=eos - {None},
            max_queue=settings.max_queue,
            chunk_tokens=settings.prefill_chunk_tokens,
            observer=metrics.PrometheusObserver(settings.model_name),
        )
        backend = self.engine.backend
        self.context, self.vocab_size = backend.max_len, backend.vocab_size
        self.token_text = TokenText(self.tokenizer)  # logprobs' token strings and bytes
        registered = installed_version(settings.model_dir) or {}  # a champion folder's
        self.card = ModelCard(
            settings.model_name,
            registered.get("version", "1"),
            path=str(settings.model_dir),
            load_seconds=time.perf_counter() - started,
            extra={
                "backend": backend.name,
                "context_tokens": backend.max_len,
                "slots": backend.slots,
                "registered_model": registered.get("registered_model"),
            },
        )

    def warmup(self) -> None:
        """One short generation: a model that cannot generate fails the load (and liveness)."""
        import threading

        from llm_chat.sampling import SamplingParams

        finished, reasons = threading.Event(), []

        def emit(delta) -> None:
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
                finished.set()

        prompt = self.tokenizer("Hello")["input_ids"]
        self.engine.submit(prompt, SamplingParams(max_tokens=2, temperature=0), emit)
        if not finished.wait(timeout=300):
            raise TimeoutError("warm-up generation did not finish in 300 s")
        if reasons[0] not in ("stop", "length"):
            raise RuntimeError(f"warm-up generation ended with {reasons[0]!r} (see the log)")

    def close(self) -> None:
        self.engine.stop()


router = APIRouter(prefix="/v1", tags=["chat"])
INLINE_CHARS = 1024
SafetyDep = Annotated[SafetyFilter, Depends(requires("safety"))]
# 200 is JSON, or with `stream: true` server-sent events: `data: <chunk JSON>` lines, then
# `data: [DONE]`; a failure after the first chunk is a `data: {"error": ...}` line.
SSE_EVENT = {"type": "object", "required": ["data"], "properties": {"data": {"type": "string"}}}
SSE = {
    200: {
        "description": "JSON, or with `stream: true` server-sent events",
        "content": {"text/event-stream": {"schema": SSE_EVENT}},
    }
}
RESPONSES = {**SSE, **error_responses(400, 404, 500, 504)}


def _model(hub: Hub, name: str | None) -> ChatModel:
    # OpenAI clients always send a model; an unknown one is a 404 that lists the loaded ones.
    return hub.get(name).model


async def _cpu(size: int, fn, *args):
    """Screening and tokenizing are linear in the text: ~0.1 s for the largest request, in the
    bounded CPU pool so the event loop keeps streaming. A short text (most chats: about a
    millisecond) runs inline, so it never queues behind large ones in the pool: a short chat
    took 1.1 s behind eight 131k-character requests, 0.1 s inline."""
    return fn(*args) if size <= INLINE_CHARS else await offload(fn, *args)


async def _start(request: Request, streams: list, admitted: list) -> list[Delta] | None:
    """Each choice's first delta (None: the client left). A failure of one choice (a stall, a
    backend error) cancels its siblings before any byte is sent. Either way, the engine's
    requests are closed (`admitted`: a wrapper cancelled before it started never closes them)."""
    firsts = [asyncio.ensure_future(anext(stream)) for stream in streams]
    try:
        started = await until_disconnected(request, asyncio.gather(*firsts))
    except BaseException:
        started = None
        raise
    finally:
        if started is None:
            for first in firsts:  # gather leaves them running; closing a running stream fails
                first.cancel()
            await asyncio.gather(*firsts, return_exceptions=True)
            for stream in [*streams, *admitted]:
                await stream.aclose()
    return started


async def _generate(request: Request, hub: Hub, safety: SafetyFilter, body, kind: str):
    settings: Settings = request.app.state.settings
    model = _model(hub, body.model)
    size = len(body.prompt) if isinstance(body, CompletionRequest) else body.characters()
    body = await _cpu(size, safety.screen_input, body)  # refuses (400) or masks PII
    # Small schemas compile in about a millisecond; large ones go to the pool with the text.
    work = await _cpu(size, plan, model, body, settings.default_max_tokens)
    most = model.engine.backend.slots + model.engine.max_queue
    if len(work.choices) > most:  # a 503 would have the client retry forever
        raise APIError(
            400,
            "invalid_value",
            f"n={len(work.choices)} choices can never run at once on this server: at most {most}",
            param="n",
            limit=most,
        )
    try:  # all `n` choices are admitted together, or none is
        admitted = model.engine.streams(work.prompt, work.choices)
    except QueueFullError as exc:
        raise APIError(
            503,
            "overloaded",
            f"server busy: {exc}; retry shortly",
            limit=settings.max_queue,
            headers={"Retry-After": "1"},
        ) from None
    streams = [within(deltas, settings.stall_timeout_s) for deltas in admitted]
    firsts = await _start(request, streams, admitted)
    if firsts is None:
        return client_gone()
    answer = Answer(
        kind,
        {
            "id": f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": model.card.name,
        },
        len(work.prompt),
        model.token_text if work.logprobs else None,
        work.tools,
        work.echo,
        bool(body.stream_options and body.stream_options.include_usage),
    )
    deltas = merge(firsts, streams)
    if body.stream:
        return StreamingResponse(
            sse(answer, deltas, len(streams), safety),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    try:
        answered = await until_disconnected(
            request, collect(answer, deltas, len(streams), safety, _cpu)
        )
    finally:
        await deltas.aclose()
    # None: the client hung up; its requests were cancelled, their slots freed
    return client_gone() if answered is None else answered


@router.post("/chat/completions", responses=RESPONSES)
async def chat_completions(body: ChatRequest, request: Request, hub: Hub, safety: SafetyDep):
    """Chat with the model; `stream: true` answers with server-sent events."""
    return await _generate(request, hub, safety, body, "chat")


@router.post("/completions", responses=RESPONSES)
async def completions(body: CompletionRequest, request: Request, hub: Hub, safety: SafetyDep):
    """Plain text completion of `prompt` (no chat template)."""
    return await _generate(request, hub, safety, body, "completion")


def build_app(settings: Settings) -> FastAPI:
    app = create_app(
        title="llm-chat",
        settings=settings,
        demo_dir=STATIC,
        load_models=lambda: [ChatModel(settings)],
    )
    app.state.resources["safety"] = SafetyFilter(
        blocked_topics=settings.blocked_topics,
        redact_pii=settings.redact_pii,
        refuse_injection=settings.refuse_prompt_injection,
    )
    install_validation_handler(app)
    app.include_router(router)
    app.include_router(tokenize_router)
    return app


def app_factory() -> FastAPI:
    """Zero-argument factory for uvicorn (`--factory`): settings from the environment."""
    return build_app(Settings())
