"""The service's settings: `RAG_CHATBOT_*` environment variables or `.env`."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from mlstack.serve import ServeSettings
from rag_chatbot.answer import RagConfig


class Settings(ServeSettings):
    model_config = SettingsConfigDict(
        **{**ServeSettings.model_config, "env_prefix": "RAG_CHATBOT_"}
    )

    port: int = 8004
    encoder_dir: Path = Path("models/semantic_search/encoder")
    encoder_variant: str = Field("int8", pattern="^(fp32|int8)$")
    reranker_dir: Path | None = Field(
        None,
        description="A cross-encoder exported by `semantic-search export-reranker`: the hybrid "
        "candidates are reordered by it (against the user's question) before the k sources are "
        "chosen. None: no reranking (no reranker weights install offline).",
    )
    index_uri: str = Field("data/rag_chatbot/index", description="LanceDB folder or Milvus URI.")
    corpus_index: Path | None = Field(
        Path("data/rag_chatbot/index-160"), description="Seeds a missing index (`dvc repro`)."
    )
    uploads_dir: Path = Field(
        Path("data/rag_chatbot/uploads"), description="Uploaded files, kept to rebuild the index."
    )
    registry: SecretStr | None = Field(
        None,
        description="The document registry: a sqlite file (WAL), shared by every worker on the "
        "host (default: <uploads_dir>/registry.sqlite; keep it on a local disk, sqlite's locks do "
        "not work over NFS), or a postgresql:// URL, shared by replicas on several hosts (the "
        "kept uploads then live in it too). Secret: the URL may hold a password; libpq's "
        "PGPASSWORD / PGPASSFILE work too. See the README.",
    )
    generator_url: str = Field(
        "http://127.0.0.1:8003/v1", description="OpenAI-compatible base URL."
    )
    generator_api_key: SecretStr | None = None
    generator_model: str = Field("", description="Empty: the first model the endpoint lists.")
    generator_tokenizer: str = Field(
        "models/llm_chat/base", description="tokenizer.json, its folder or a hub id: the budget."
    )
    generator_timeout_s: float = Field(120.0, gt=0)
    serving_card: Path | None = Field(
        Path("models/rag_chatbot/champion/serving.json"),
        description="What `rag_evaluate` evaluated (chunking, retrieval, relevance floor, "
        "generation limits), as `rag_register` promoted it: used for every setting below not "
        "set explicitly. Missing: the defaults below, with a warning.",
    )
    # Defaults for a service without a serving card only: the card holds what was evaluated.
    chunk_tokens: int = Field(160, ge=16, le=512)
    overlap_tokens: int = Field(16, ge=0)
    k: int = Field(5, ge=1, le=20)
    mode: str = Field("hybrid", pattern="^(dense|bm25|hybrid)$")
    diversify: float | None = Field(0.7, ge=0, le=1)
    max_per_document: int | None = Field(
        None,
        ge=1,
        description="Chunks of one document among the k sources before other documents' (more "
        "only when no other clears the floor); null: relevance order alone.",
    )
    min_relevance: float = Field(
        0.55, ge=-1, le=1, description="The card's is chosen on the tune split (rag_evaluate)."
    )
    context_tokens: int = Field(1024, ge=64)
    # Hybrid fusion and BM25's fields (semantic_search.retrieval.Retriever, stores/memory.py).
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(1.0, ge=0)
    bm25_weight: float = Field(1.0, ge=0)
    candidates: int = Field(50, ge=1, description="Hits each ranking gives hybrid and MMR.")
    bm25_fields: dict[str, int] = Field(
        default_factory=dict,
        description="Fields BM25 indexes beside the chunk text, each repeated its weight in times "
        "(`title`, or a chunk metadata key); LanceDB's in-memory index only.",
    )
    answer_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    support_threshold: float = Field(
        0.5, ge=0, le=1, description="Share of a sentence's content words a cited source holds."
    )
    rewrite: bool = True
    expand: Literal["hyde"] | None = Field(
        None,
        description="hyde: search each question with the generator's one-sentence answer too "
        "(one short generation first); its own relevance still meets min_relevance.",
    )
    attribute: bool = True
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_pages: int = Field(500, ge=1)
    max_document_chunks: int = Field(2000, ge=1, description="Chunks one upload may make (413).")
    max_document_chars: int = Field(
        500_000,
        ge=1,
        description="Characters of text one upload may hold (413), checked "
        "before tokenizing (~1 s of CPU a megabyte).",
    )
    parse_timeout_s: float = Field(
        20.0, gt=0, description="Wall-clock budget to parse one upload, in a child process (422)."
    )
    parse_memory_mb: int = Field(
        1024, ge=128, description="Address space of that child: decompression bombs fail (413)."
    )
    onnx_threads: int = Field(0, ge=0)
    max_body_bytes: int = Field(11 * 1024 * 1024, ge=1024)  # an upload plus its form fields

    def rag_config(self) -> RagConfig:
        fields = RagConfig.__dataclass_fields__
        chosen = {k: v for k, v in self.model_dump().items() if k in fields}
        return RagConfig(**chosen, rerank=self.reranker_dir is not None)
