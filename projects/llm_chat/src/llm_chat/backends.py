"""What the engine needs from a model: prefill a prompt into a cache slot, then decode one token
for every slot in one call. `NativeBackend` batches the decode (model.py); `TransformersBackend`
runs any Hugging Face causal LM, one slot at a time, for architectures model.py does not cover.

This module names the backends (`BACKENDS`), resolves `auto` to one (`resolve_kind`) and loads
it (`load_backend`); each backend lives in its own backend_*.py module."""

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

import torch

from llm_chat.backend_llama_cpp import LlamaCppBackend
from llm_chat.backend_native import NativeBackend
from llm_chat.backend_onnx import OnnxBackend
from llm_chat.backend_transformers import TransformersBackend
from llm_chat.ov_config import DEFAULT_PRECISION

log = logging.getLogger("llm_chat.backends")
T = TypeVar("T")


class Backend(Protocol):
    name: str
    slots: int
    max_len: int  # context per slot: prompt + output
    vocab_size: int

    def prefill(self, slot: int, tokens: list[int]) -> torch.Tensor:
        """Starts `slot` over with `tokens`; returns the next-token logits (vocab,)."""

    def decode(self, tokens: list[int], positions: list[int]) -> torch.Tensor:
        """One token for each of slots 0..len(tokens)-1, at those positions: logits (n, vocab).
        Rows of idle slots carry a dummy token at position 0 and are ignored."""


def on_own_thread(fn: Callable[..., T], *args) -> T:
    """`fn(*args)` on a thread that ends with it: PyTorch work outside an engine (an HF
    baseline, say) then leaves no OpenMP pool behind to slow the engine's (see `Engine`)."""
    with ThreadPoolExecutor(1, thread_name_prefix="torch-once") as pool:
        return pool.submit(fn, *args).result()


BACKENDS = (
    "auto",
    "openvino",
    "native",
    "native-int8",
    "transformers",
    "onnx",
    "onnx-int8",
    "llama.cpp",
)


def default_ov_dir(model_dir: str | Path) -> Path:
    """Where a model's int8 OpenVINO export is: inside the folder as `openvino-int8/` (a
    registered version, e.g. models/llm_chat/champion), else where the DVC stages put it:
    models/llm_chat/base -> models/llm_chat/openvino-int8, any other <dir>/<name> ->
    <dir>/openvino-<name>-int8."""
    model_dir = Path(model_dir)
    if (model_dir / "openvino-int8" / "openvino_model.xml").exists():
        return model_dir / "openvino-int8"
    name = "openvino-int8" if model_dir.name == "base" else f"openvino-{model_dir.name}-int8"
    return model_dir.parent / name


def _openvino_ready(ov_dir: Path) -> str | None:
    """None when the openvino backend can serve `ov_dir`, else why not."""
    import importlib.util

    if not (ov_dir / "openvino_model.xml").exists():
        return f"no OpenVINO export at {ov_dir} (dvc repro llm_export_openvino)"
    if importlib.util.find_spec("openvino_genai") is None:
        return "openvino-genai is not installed"
    return None


def resolve_kind(kind: str, model_dir: str | Path, ov_dir: str | Path | None = None) -> str:
    """The backend `kind` names; `auto` is openvino where `ov_dir` (default:
    `default_ov_dir(model_dir)`) holds an export, else native for Llama-family folders and
    transformers otherwise."""
    if kind not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {kind!r}")
    if kind != "auto":
        return kind
    if (why := _openvino_ready(Path(ov_dir) if ov_dir else default_ov_dir(model_dir))) is None:
        return "openvino"
    from llm_chat.model import LlamaConfig

    try:
        LlamaConfig.from_folder(model_dir)
        kind = "native"
    except ValueError:
        kind = "transformers"
    log.info("backend auto: %s; serving with the %s backend", why, kind)
    return kind


def load_backend(
    kind: str,
    model_dir: str | Path,
    *,
    slots: int,
    max_len: int,
    threads: int = 0,
    gguf: str | Path | None = None,
    onnx_dir: str | Path | None = None,
    ov_dir: str | Path | None = None,
    ov_precision: str = DEFAULT_PRECISION,
):
    """`kind` as `resolve_kind` reads it. openvino returns an `OVModel`, driven by `OVEngine`
    (ov_engine.py; `engine_for` picks the engine and where the backend loads). llama.cpp
    reads `gguf` (default: the packaged SmolLM2 file), ONNX reads `onnx_dir` (see
    onnx_export.py); their vocabulary must be `model_dir`'s, whose tokenizer the engine uses."""
    kind = resolve_kind(kind, model_dir, ov_dir)
    ov_dir = Path(ov_dir) if ov_dir else default_ov_dir(model_dir)
    options = {"slots": slots, "max_len": max_len, "threads": threads}
    if kind == "openvino":
        from llm_chat.ov_config import load_pipeline

        return load_pipeline(ov_dir, precision=ov_precision, **options)
    if kind == "llama.cpp":
        from llm_chat.convert import packaged_gguf

        return LlamaCppBackend(gguf or packaged_gguf(), **options)
    if kind in ("onnx", "onnx-int8"):
        if onnx_dir is None:
            raise ValueError("the onnx backends need onnx_dir (`llm-chat export` writes it)")
        return OnnxBackend(onnx_dir, int8=kind == "onnx-int8", **options)
    if kind == "transformers":
        return TransformersBackend(model_dir, **options)
    return NativeBackend(model_dir, int8=kind == "native-int8", **options)


def stop_tokens(model_dir: str | Path, tokenizer) -> set[int]:
    """The ids that end an answer: the tokenizer's eos and the generation config's, which differ
    in the packaged SmolLM2 (`<|im_start|>` and `<|im_end|>`): the server and the evaluations
    stop on the same ones."""
    from transformers import GenerationConfig

    eos = {tokenizer.eos_token_id}
    try:
        configured = GenerationConfig.from_pretrained(model_dir).eos_token_id
        eos |= set(configured if isinstance(configured, list) else [configured])
    except OSError:  # no generation_config.json
        pass
    return eos - {None}
