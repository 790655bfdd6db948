"""The served model as readiness and /v1/models see it: the encoder and the index behind the
answering pipeline."""

from typing import Any

from mlstack.serve import ModelCard, file_sha256
from mlstack.serving_card import warn_if_changed
from rag_chatbot.answer import Rag
from semantic_search.encoder import VARIANTS


class RetrievalModel:
    """The encoder and index, as the service's readiness and /v1/models see them. Retrieval runs
    in the request's thread (no micro-batcher: a query is one short text)."""

    predict_batch = None

    def __init__(self, rag: Rag, serving: dict[str, Any] | None = None) -> None:
        self.rag = rag
        encoder = rag.retriever.encoder
        path = encoder.model_dir / VARIANTS[encoder.variant]
        sha256 = file_sha256(path)
        serving = serving or {"card": None}
        warn_if_changed(serving, "encoder_sha256", sha256)
        self.card = ModelCard(
            encoder.name,
            encoder.variant,
            str(path),
            sha256,
            extra={"dim": encoder.dim, "serving": serving},
        )

    def warmup(self) -> None:
        # One retrieval loads the index's in-memory copy (BM25 included): seconds, not per query.
        self.rag.retrieve("warm up the index", self.rag.config)
