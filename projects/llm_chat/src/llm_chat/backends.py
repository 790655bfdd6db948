"""What the engine needs from a model: prefill a prompt into a cache slot, then decode one token
for every slot in one call. `NativeBackend` batches the decode (model.py); `TransformersBackend`
runs any Hugging Face causal LM, one slot at a time, for architectures model.py does not cover."""

from pathlib import Path
from typing import Protocol

import torch


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

            self.model = quantize_dynamic(self.model, {torch.nn.Linear: per_channel_dynamic_qconfig},
                                          dtype=torch.qint8)  # fmt: skip
        config = self.model.config
        self.max_len = min(max_len, config.max_position_embeddings)
        self.slots, self.vocab_size = slots, config.vocab_size
        self.cache = self.model.new_cache(slots, self.max_len)

    def prefill(self, slot: int, tokens: list[int]) -> torch.Tensor:
        return self.model(torch.tensor([tokens]), self.cache, slot, torch.tensor([0]))[0]

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
            out = self.model(torch.tensor([[token]]), past_key_values=cache, use_cache=True,
                             cache_position=torch.tensor([position]))  # fmt: skip
            rows.append(out.logits[0, -1])
        return torch.stack(rows)


class LlamaCppBackend:
    """llama.cpp (the optional `llama-cpp-python` extra) on a GGUF file, one context per slot
    (the weights are memory-mapped once). Decodes slot by slot: its speed is per stream."""

    name = "llama.cpp"

    def __init__(self, gguf: str | Path, *, slots: int, max_len: int, threads: int = 0):
        from llama_cpp import Llama

        self._contexts = [Llama(str(gguf), n_ctx=max_len, n_threads=threads or None,
                                n_batch=min(512, max_len), verbose=False) for _ in range(slots)]  # fmt: skip
        self.slots, self.max_len = slots, max_len
        self.vocab_size = self._contexts[0].n_vocab()

    def _last_logits(self, slot: int) -> torch.Tensor:
        context = self._contexts[slot]
        return torch.from_numpy(context.scores[context.n_tokens - 1].copy())

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


BACKENDS = ("auto", "native", "native-int8", "transformers", "llama.cpp")


def load_backend(
    kind: str,
    model_dir: str | Path,
    *,
    slots: int,
    max_len: int,
    threads: int = 0,
    gguf: str | Path | None = None,
):
    """`auto` picks native for Llama-family folders and transformers otherwise. llama.cpp
    reads `gguf` (default: the packaged SmolLM2 file), whose vocabulary must be `model_dir`'s."""
    if kind not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {kind!r}")
    if kind == "auto":
        from llm_chat.model import LlamaConfig

        try:
            LlamaConfig.from_folder(model_dir)
            kind = "native"
        except ValueError:
            kind = "transformers"
    options = {"slots": slots, "max_len": max_len, "threads": threads}
    if kind == "llama.cpp":
        from llm_chat.convert import packaged_gguf

        return LlamaCppBackend(gguf or packaged_gguf(), **options)
    if kind == "transformers":
        return TransformersBackend(model_dir, **options)
    return NativeBackend(model_dir, int8=kind == "native-int8", **options)
