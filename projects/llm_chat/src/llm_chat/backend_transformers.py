"""Any Hugging Face causal LM, one slot at a time, for architectures model.py does not cover."""

from pathlib import Path

import torch


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
