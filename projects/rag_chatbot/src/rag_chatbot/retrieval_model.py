"""The served model as readiness and /v1/models see it: the encoder and the index behind the
answering pipeline."""

from typing import Any

from rag_chatbot.answer import Rag
from semantic_search.service import encoder_card


class RetrievalModel:
    """The encoder and index, as the service's readiness and /v1/models see them. Retrieval runs
    in the request's thread (no micro-batcher: a query is one short text)."""

    predict_batch = None

    def __init__(self, rag: Rag, serving: dict[str, Any] | None = None) -> None:
        self.rag = rag
        self.card = encoder_card(rag.retriever.encoder, serving)

    def warmup(self) -> None:
        # One retrieval loads the index's in-memory copy (BM25 included): seconds, not per query.
        self.rag.retrieve("warm up the index", self.rag.config)
