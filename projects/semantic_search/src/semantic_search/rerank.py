"""Reranking behind one interface. `CrossEncoderReranker` runs any Hugging Face cross-encoder
(a sequence-classification model over (query, passage) pairs) exported to ONNX by
`export.build_cross_encoder`; no weights ship offline, so tests build a tiny one."""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from semantic_search.encoder import CONFIG_FILE, TOKENIZER_FILE


class Reranker(Protocol):
    name: str

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """One relevance score per passage, higher is more relevant."""


class CrossEncoderReranker:
    def __init__(self, model_dir: str | Path, *, threads: int = 0, batch_size: int = 32) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        config = json.loads((model_dir / CONFIG_FILE).read_text())
        self.name = Path(config["source"]).name
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        self.tokenizer.enable_truncation(config["max_seq_length"], strategy="only_second")
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        self.session = ort.InferenceSession(
            str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self.session.get_inputs()}

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        scores = []
        for start in range(0, len(passages), self.batch_size):
            batch = self.tokenizer.encode_batch(
                [(query, p) for p in passages[start : start + self.batch_size]]
            )
            feed = {
                "input_ids": np.array([e.ids for e in batch], np.int64),
                "attention_mask": np.array([e.attention_mask for e in batch], np.int64),
                "token_type_ids": np.array([e.type_ids for e in batch], np.int64),
            }
            logits = self.session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            scores.append(logits[:, -1])  # one-logit models; for two labels, the "relevant" one
        return np.concatenate(scores) if scores else np.zeros(0, np.float32)
