"""The native backend: our own Llama (model.py) with a cache slot per request, decoding every
slot in one batched call; it can also continue a slot from any position (prefix caching)."""

from pathlib import Path

import torch


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
