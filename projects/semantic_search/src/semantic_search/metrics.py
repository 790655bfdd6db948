"""Search metrics, next to mlstack's HTTP and model metrics (encoding is the `model_*` series)."""

from prometheus_client import Counter, Histogram

from mlstack.monitor.metrics import LATENCY_BUCKETS

ENCODE_LATENCY = Histogram(
    "search_encode_duration_seconds",
    "Query encoding time, batch queue included.",
    buckets=LATENCY_BUCKETS,
)
SEARCH_LATENCY = Histogram(
    "search_duration_seconds",
    "Index time per search (after encoding).",
    ["mode"],
    buckets=LATENCY_BUCKETS,
)
RESULTS = Histogram(
    "search_results",
    "Results returned per search.",
    ["mode"],
    buckets=(0, 1, 2, 5, 10, 20, 50, 100),
)
SEARCHES = Counter("search_requests_total", "Searches by mode.", ["mode"])
ZERO_RESULTS = Counter("search_zero_results_total", "Searches that returned nothing.", ["mode"])
TOP_SCORE = Histogram(
    "search_top_score",
    "Score of the first result (cosine for dense, RRF for hybrid).",
    ["mode"],
    buckets=(0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 5, 10, 20),
)
DOCUMENTS_WRITTEN = Counter("documents_written_total", "Documents upserted or deleted.", ["op"])
