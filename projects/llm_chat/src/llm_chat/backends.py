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
    name = "native"

    def __init__(self, model_dir: str | Path, *, slots: int, max_len: int, threads: int = 0):
        from llm_chat.model import Llama

        if threads:
            torch.set_num_threads(threads)
        self.model = Llama.from_folder(model_dir)
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


def load_backend(kind: str, model_dir: str | Path, *, slots: int, max_len: int, threads: int = 0):
    """`auto` picks the native backend for Llama-family folders and transformers otherwise."""
    if kind == "auto":
        from llm_chat.model import LlamaConfig

        try:
            LlamaConfig.from_folder(model_dir)
            kind = "native"
        except ValueError:
            kind = "transformers"
    backends = {"native": NativeBackend, "transformers": TransformersBackend}
    if kind not in backends:
        raise ValueError(f"backend must be auto or one of {sorted(backends)}, got {kind!r}")
    return backends[kind](model_dir, slots=slots, max_len=max_len, threads=threads)
