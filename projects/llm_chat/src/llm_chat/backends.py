"""What the engine needs from a model: prefill a prompt into a cache slot, then decode one token
for every slot in one call. `NativeBackend` batches the decode (model.py); `TransformersBackend`
runs any Hugging Face causal LM, one slot at a time, for architectures model.py does not cover."""

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import torch

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


class NativeBackend:
    """`int8=True` quantizes every linear layer's weights to INT8 per output channel (dynamic
    activations, fbgemm): decoding one token reads all weights, so it is bound by memory
    bandwidth, and a quarter of the bytes is most of the speed-up. The cost: activations are
    scaled per batch, so a request's tokens can change with what shares its batch, and
    perplexity rises (see reports/llm_chat). fp32 is batch-invariant, hence the default."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        slots: int,
        max_len: int,
        threads: int = 0,
        int8: bool = False,
    ):
        from llm_chat.model import Llama

        if threads:
            torch.set_num_threads(threads)
        self.name = "native-int8" if int8 else "native"
        self.model = Llama.from_folder(model_dir)
        if int8:
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            self.model = quantize_dynamic(
                self.model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
            )
        config = self.model.config
        self.max_len = min(max_len, config.max_position_embeddings)
        self.slots, self.vocab_size = slots, config.vocab_size
        self.cache = self.model.new_cache(slots, self.max_len)

    reuses_prefix = True  # prefill can continue a slot from any position (prefix caching)

    def prefill(self, slot: int, tokens: list[int], start: int = 0) -> torch.Tensor:
        """`start` > 0 keeps the slot's first `start` positions (a cached prefix)."""
        return self.model(torch.tensor([tokens]), self.cache, slot, torch.tensor([start]))[0]

    def decode(self, tokens: list[int], positions: list[int]) -> torch.Tensor:
        step = torch.tensor(tokens)[:, None]
        return self.model(step, self.cache, 0, torch.tensor(positions))


class TransformersBackend:
    """`AutoModelForCausalLM` with one `DynamicCache` per slot: correct for any architecture,
    batched only in the sense that the engine interleaves requests token by token."""

    name = "transformers"

    def __init__(self, model_dir: str | Path, *, slots: int, max_len: int, threads: int = 0):
        from transformers import AutoConfig, AutoModelForCausalLM

        if threads:
            torch.set_num_threads(threads)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        self.model.eval()
        config = AutoConfig.from_pretrained(model_dir)
        limit = getattr(config, "max_position_embeddings", max_len)
        self.max_len = min(max_len, limit)
        self.slots, self.vocab_size = slots, config.vocab_size
        self._caches: list = [None] * slots

    @torch.inference_mode()
    def prefill(self, slot: int, tokens: list[int]) -> torch.Tensor:
        from transformers import DynamicCache

        self._caches[slot] = DynamicCache()
        out = self.model(torch.tensor([tokens]), past_key_values=self._caches[slot], use_cache=True)
        return out.logits[0, -1]

    @torch.inference_mode()
    def decode(self, tokens: list[int], positions: list[int]) -> torch.Tensor:
        rows = []
        for slot, (token, position) in enumerate(zip(tokens, positions, strict=True)):
            cache = self._caches[slot]
            if cache is None or position == 0:  # an idle slot
                rows.append(torch.zeros(self.vocab_size))
                continue
            out = self.model(
                torch.tensor([[token]]),
                past_key_values=cache,
                use_cache=True,
                cache_position=torch.tensor([position]),
            )
            rows.append(out.logits[0, -1])
        return torch.stack(rows)


class OnnxBackend:
    """ONNX Runtime on an export with past key values (onnx_export.py), one cache per slot:
    correct for any architecture optimum exports; decodes slot by slot."""

    def __init__(
        self,
        onnx_dir: str | Path,
        *,
        slots: int,
        max_len: int,
        threads: int = 0,
        int8: bool = False,
    ) -> None:
        import json

        import onnxruntime as ort

        from llm_chat.onnx_export import FP32, INT8

        self.name = "onnx-int8" if int8 else "onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(Path(onnx_dir) / (INT8 if int8 else FP32)),
            options,
            providers=["CPUExecutionProvider"],
        )
        config = json.loads((Path(onnx_dir) / "config.json").read_text())
        self.max_len = min(max_len, config.get("max_position_embeddings", max_len))
        self.slots, self.vocab_size = slots, config["vocab_size"]
        self._cache_inputs = [i for i in self.session.get_inputs() if i.name.startswith("past_")]
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._past: list[list | None] = [None] * slots

    def _run(self, slot: int, tokens: list[int], start: int) -> torch.Tensor:
        past = self._past[slot]
        if past is None:  # an empty cache: (1, kv_heads, 0, head_dim) per input
            past = [
                np.zeros((1, i.shape[1], 0, i.shape[3]), np.float32) for i in self._cache_inputs
            ]
        feed = {
            "input_ids": np.array([tokens], np.int64),
            "attention_mask": np.ones((1, start + len(tokens)), np.int64),
            "position_ids": np.arange(start, start + len(tokens), dtype=np.int64)[None],
        }
        feed |= {i.name: value for i, value in zip(self._cache_inputs, past, strict=True)}
        logits, *present = self.session.run(self._outputs, feed)
        self._past[slot] = present
        return torch.from_numpy(logits[0, -1].copy())

    def prefill(self, slot: int, tokens: list[int]) -> torch.Tensor:
        self._past[slot] = None
        return self._run(slot, tokens, 0)

    def decode(self, tokens: list[int], positions: list[int]) -> torch.Tensor:
        rows = []
        for slot, (token, position) in enumerate(zip(tokens, positions, strict=True)):
            if position == 0 or self._past[slot] is None:  # an idle slot
                rows.append(torch.zeros(self.vocab_size))
                continue
            rows.append(self._run(slot, [token], position))
        return torch.stack(rows)


class LlamaCppBackend:
    """llama.cpp (the optional `llama-cpp-python` extra) on a GGUF file, one context per slot
    (the weights are memory-mapped once). Decodes slot by slot: its speed is per stream."""

    name = "llama.cpp"

    def __init__(self, gguf: str | Path, *, slots: int, max_len: int, threads: int = 0):
        from llama_cpp import Llama, llama_get_logits_ith

        self._logits_ith = llama_get_logits_ith
        self._contexts = [
            Llama(
                str(gguf),
                n_ctx=max_len,
                n_threads=threads or None,
                n_batch=min(512, max_len),
                verbose=False,
            )
            for _ in range(slots)
        ]
        self.slots, self.max_len = slots, max_len
        self.vocab_size = self._contexts[0].n_vocab()

    def _last_logits(self, slot: int) -> torch.Tensor:
        # `Llama.scores` only keeps logits with logits_all=True (a vocab-wide row per context
        # position); the C API gives the last evaluated token's row, which is all we need.
        row = self._logits_ith(self._contexts[slot].ctx, -1)
        return torch.from_numpy(np.ctypeslib.as_array(row, shape=(self.vocab_size,)).copy())

    def prefill(self, slot: int, tokens: list[int]) -> torch.Tensor:
        self._contexts[slot].reset()
        self._contexts[slot].eval(tokens)
        return self._last_logits(slot)

    def decode(self, tokens: list[int], positions: list[int]) -> torch.Tensor:
        rows = []
        for slot, (token, position) in enumerate(zip(tokens, positions, strict=True)):
            if position == 0:  # an idle slot
                rows.append(torch.zeros(self.vocab_size))
                continue
            self._contexts[slot].eval([token])
            rows.append(self._last_logits(slot))
        return torch.stack(rows)


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
        return f"no OpenVINO export at {ov_dir} (dvc repro llm_export_openvino@int8)"
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
    ov_precision: str | None = None,
):
    """`kind` as `resolve_kind` reads it. openvino returns an `OVModel`, driven by `OVEngine`
    (ov_engine.py; `engine_for` picks the engine and where the backend loads). llama.cpp
    reads `gguf` (default: the packaged SmolLM2 file), ONNX reads `onnx_dir` (see
    onnx_export.py); their vocabulary must be `model_dir`'s, whose tokenizer the engine uses."""
    kind = resolve_kind(kind, model_dir, ov_dir)
    ov_dir = Path(ov_dir) if ov_dir else default_ov_dir(model_dir)
    options = {"slots": slots, "max_len": max_len, "threads": threads}
    if kind == "openvino":
        from llm_chat.ov_engine import load_pipeline

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
