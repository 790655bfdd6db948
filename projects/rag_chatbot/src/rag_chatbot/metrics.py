"""RAG metrics, next to mlstack's HTTP metrics: retrieval and generation timed apart."""

from prometheus_client import Counter, Histogram

from mlstack.monitor.metrics import LATENCY_BUCKETS

RETRIEVAL_LATENCY = Histogram(
    "rag_retrieval_duration_seconds",
    "Query rewriting excluded: encode, search, budget.",
    buckets=LATENCY_BUCKETS,
)
GENERATION_LATENCY = Histogram(
    "rag_generation_duration_seconds",
    "From the generator request to its last token.",
    buckets=(*LATENCY_BUCKETS, 30, 60, 120),
)
FIRST_TOKEN_LATENCY = Histogram(
    "rag_generation_first_token_seconds",
    "From the generator request to its first token.",
    buckets=LATENCY_BUCKETS,
)
REWRITE_LATENCY = Histogram(
    "rag_rewrite_duration_seconds",
    "Follow-up rewriting (only conversations with history).",
    buckets=LATENCY_BUCKETS,
)
CHUNKS_USED = Histogram(
    "rag_chunks_used",
    "Sources put in the prompt per answer.",
    buckets=(0, 1, 2, 3, 4, 5, 6, 8, 10, 20),
)
TOP_RELEVANCE = Histogram(
    "rag_top_retrieval_score",
    "Cosine of the query and its best retrieved chunk.",
    buckets=(-0.2, 0, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9, 1.0),
)
ANSWERS = Counter(
    "rag_answers_total", "Answers by outcome; no-answer rate = no_answer / all.", ["outcome"]
)
CITATIONS = Counter("rag_citations_total", "Citations returned, by who made them.", ["origin"])
DOCUMENTS = Counter("rag_documents_total", "Document operations.", ["op"])
