"""Sentence embeddings with ONNX Runtime: the fast tokenizer, length-sorted batches (less padding)
and pooling + normalisation inside the graph, so the output is the sentence-transformers embedding.

Needs no torch: this is what the service and the RAG chatbot load.
"""

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONFIG_FILE = "encoder.json"
TOKENIZER_FILE = "tokenizer.json"
VARIANTS = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


@dataclass(frozen=True)
class EncoderConfig:
    """What `export.build_encoder` writes next to the ONNX files."""

    source: str
    dim: int
    max_seq_length: int
    pooling: str
    normalize: bool
    name: str = ""

    @classmethod
    def load(cls, model_dir: Path) -> "EncoderConfig":
        data = json.loads((model_dir / CONFIG_FILE).read_text())
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Tokenized:
    ids: list[list[int]]
    token_counts: np.ndarray  # before truncation, special tokens included
    truncated: np.ndarray  # bool per text


class Encoder:
    """`encode(texts)` -> (n, dim) float32 rows, L2-normalised when the source model normalises."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        variant: str = "int8",
        threads: int = 0,
        batch_size: int = 32,
        onnx_file: str | Path | None = None,
        bulk: bool = False,
    ) -> None:
        """`variant` picks model.onnx or model.int8.onnx in `model_dir`; `onnx_file` wins.
        `bulk`: a job that only encodes (an index build), whose threads may spin between runs."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        self.model_dir = Path(model_dir)
        self.variant = variant
        self.config = EncoderConfig.load(self.model_dir)
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / TOKENIZER_FILE))
        # Truncation is ours (it tells us which texts were cut); padding is per batch.
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # Idle ORT threads otherwise spin for a while after each run, starving the index search
        # that follows the query encoding on the same cores. A bulk job has nothing else to run:
        # spinning threads encoded a corpus 8% faster (2,500 documents, 2 threads: 17.8 vs 19.4 s).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if bulk else "0")
        self.session = ort.InferenceSession(
            str(onnx_file or self.model_dir / VARIANTS[variant]),
            options,
            providers=["CPUExecutionProvider"],
        )
        self._inputs = {i.name for i in self.session.get_inputs()}

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def max_tokens(self) -> int:
        return self.config.max_seq_length

    @property
    def name(self) -> str:
        return self.config.name or Path(self.config.source).name

    def tokenize(self, texts: Sequence[str]) -> Tokenized:
        encodings = self.tokenizer.encode_batch(list(texts))
        counts = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        limit = self.max_tokens
        # Keep the closing special token ([SEP]) as the model saw it in training.
        ids = [e.ids if len(e.ids) <= limit else e.ids[: limit - 1] + e.ids[-1:] for e in encodings]
        return Tokenized(ids, counts, counts > limit)

    def count_tokens(self, texts: Sequence[str]) -> np.ndarray:
        return self.tokenize(texts).token_counts

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        return self.encode_tokenized(self.tokenize(texts), batch_size=batch_size)

    def encode_tokenized(
        self,
        tokens: Tokenized,
        *,
        batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """All texts sorted by length first (the fewest pad tokens); `on_batch(rows)` after each
        batch, for progress bars."""
        batch_size = batch_size or self.batch_size
        out = np.empty((len(tokens.ids), self.dim), dtype=np.float32)
        order = np.argsort([len(i) for i in tokens.ids], kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._run([tokens.ids[r] for r in rows])
            if on_batch:
                on_batch(len(rows))
        return out

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return self.session.run(None, feed)[0]
