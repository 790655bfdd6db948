"""Fixtures: a tiny encoder built from a config (random weights, the real tokenizer) and exported
through the real pipeline, and a small real corpus from the packaged Wikipedia summaries."""

from pathlib import Path

import numpy as np
import pytest

from semantic_search.corpus import wiki_summaries
from semantic_search.documents import Document
from semantic_search.testing import save_tiny_sentence_transformer

TOPICS = ("Arts", "Mathematics", "Geography")


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
            picked.append(
                Document(
                    id=a["title"],
                    title=a["title"],
                    text=a["extract"],
                    topic=topic,
                    source="wikipedia",
                    date=f"20{10 + i:02d}-01-15",
                )
            )
    return picked


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
