"""The chat service's settings, from `LLM_CHAT_*` variables or `.env`."""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from llm_chat.ov_config import DEFAULT_PRECISION
from llm_chat.pipeline import default_model_dir
from mlstack.serve import ServeSettings


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
    ov_precision: Literal["f32", "bf16"] = Field(
        DEFAULT_PRECISION,
        description="OpenVINO's compute precision (f32: measured faster than bf16 for this "
        "model on AMX CPUs, see ov_config.DEFAULT_PRECISION)",
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
