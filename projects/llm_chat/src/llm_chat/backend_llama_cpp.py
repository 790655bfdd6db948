"""llama.cpp on a GGUF file (the optional `llama-cpp-python` extra)."""

import threading
from pathlib import Path

import numpy as np
import torch

# load_llama swaps a function of the llama_cpp module for the length of a load: two loads in two
# threads would save each other's patch as the "default" and leave it in place, or one would
# load with the real defaults (and its extra layouts) that the other had just restored.
_PATCH_AND_LOAD = threading.Lock()


def load_llama(gguf: str | Path, **options):
    """`Llama(gguf, **options)` with ggml's extra weight layouts off (`use_extra_bufts`: the
    repacked and AMX ones). With them, the int8 files (Q8_0, the packaged Q4_1) segfaulted at
    the first decode on this AVX-512/AMX Xeon (llama-cpp-python 0.3.36, a native build); F16
    decoded, and so does Q8_0 without them. llama-cpp-python has no argument for it: the model
    defaults it reads are patched while the model loads."""
    import llama_cpp.llama_cpp as lib
    from llama_cpp import Llama

    with _PATCH_AND_LOAD:  # the function saved as the default must be the real one
        defaults = lib.llama_model_default_params

        def plain_layouts():
            params = defaults()
            params.use_extra_bufts = False
            return params

        lib.llama_model_default_params = plain_layouts
        try:
            return Llama(str(gguf), **options)
        finally:
            lib.llama_model_default_params = defaults


class LlamaCppBackend:
    """llama.cpp (the optional `llama-cpp-python` extra) on a GGUF file, one context per slot
    (the weights are memory-mapped once). Decodes slot by slot: its speed is per stream."""

    name = "llama.cpp"

    def __init__(self, gguf: str | Path, *, slots: int, max_len: int, threads: int = 0):
        from llama_cpp import llama_get_logits_ith

        self._logits_ith = llama_get_logits_ith
        self._contexts = [
            load_llama(
                gguf,
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
