"""ONNX Runtime on an export with past key values (onnx_export.py)."""

from pathlib import Path

import numpy as np
import torch


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
