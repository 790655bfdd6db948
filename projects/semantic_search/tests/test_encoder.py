"""Export and quantization on a tiny model built from a config: the real pipeline, small weights."""

import json

import numpy as np

from semantic_search.encoder import Encoder
from semantic_search.export import embedding_parity, sentence_transformer_layout

SENTENCES = [
    "The cat sat on the mat.",
    "Quantum mechanics describes nature at the smallest scales.",
    "A very long sentence " + "that keeps going " * 40,
    "Short.",
]


def test_layout_read_from_the_sentence_transformers_folder(tiny_st_model):
    assert sentence_transformer_layout(tiny_st_model) == {
        "pooling": "mean",
        "normalize": True,
        "max_seq_length": 64,
    }


def test_onnx_matches_sentence_transformers(tiny_st_model, encoder_dir):
    report = embedding_parity(str(tiny_st_model), encoder_dir, SENTENCES)
    assert report["fp32"]["min_cosine"] > 0.9999
    assert report["int8"]["min_cosine"] > 0.9


def test_length_sorted_batches_keep_input_order(encoder_dir):
    encoder = Encoder(encoder_dir, variant="fp32", batch_size=2)
    batched = encoder.encode(SENTENCES)
    one_by_one = np.stack([encoder.encode([s])[0] for s in SENTENCES])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_progress_counts_every_text_once_and_keeps_the_order(encoder_dir):
    encoder = Encoder(encoder_dir, variant="fp32", batch_size=3)
    texts = SENTENCES * 2
    done: list[int] = []
    vectors = encoder.encode_tokenized(encoder.tokenize(texts), on_batch=done.append)
    assert done == [3, 3, 2]
    np.testing.assert_allclose(vectors, encoder.encode(texts, batch_size=1), atol=1e-5)


def test_truncation_is_reported(encoder_dir):
    encoder = Encoder(encoder_dir, variant="int8")
    tokens = encoder.tokenize(SENTENCES)
    assert encoder.max_tokens == 64
    assert tokens.truncated.tolist() == [False, False, True, False]
    assert tokens.token_counts[2] > 64 and len(tokens.ids[2]) == 64
    assert tokens.ids[2][-1] == tokens.ids[0][-1]  # still ends with [SEP]


def test_encoder_json_records_the_source(encoder_dir, tiny_st_model):
    config = json.loads((encoder_dir / "encoder.json").read_text())
    assert config["source"] == str(tiny_st_model) and config["dim"] == 32
