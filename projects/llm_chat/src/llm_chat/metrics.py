"""Serving metrics under vLLM's (v1) names and `model_name` label, so dashboards and alerts
written for vLLM read this server unchanged: time to first token, inter-token latency (also
under its pre-0.11 name, `vllm:time_per_output_token_seconds`, which most published dashboards
still chart), end-to-end latency, token counters, finished requests by reason, running and
waiting requests, and prefix-cache queries and hits counted in tokens as vLLM counts them."""

from prometheus_client import Counter, Gauge, Histogram

from llm_chat.engine_api import Observer

# vLLM's own buckets, so quantiles from mixed fleets are comparable.
_TTFT = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
_ITL = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
_E2E = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)
MODEL = ["model_name"]

TTFT = Histogram(
    "vllm:time_to_first_token_seconds",
    "Queue + prefill until the first token.",
    MODEL,
    buckets=_TTFT,
)
ITL = Histogram(
    "vllm:inter_token_latency_seconds", "Time between two tokens of a request.", MODEL, buckets=_ITL
)
TPOT = Histogram(
    "vllm:time_per_output_token_seconds",
    "Time between two tokens of a request "
    "(vLLM's name before 0.11; same values as vllm:inter_token_latency_seconds).",
    MODEL,
    buckets=_ITL,
)
E2E = Histogram(
    "vllm:e2e_request_latency_seconds", "Submission to the last token.", MODEL, buckets=_E2E
)
PROMPT_TOKENS = Counter("vllm:prompt_tokens", "Prompt tokens of finished requests.", MODEL)
GENERATION_TOKENS = Counter("vllm:generation_tokens", "Tokens generated.", MODEL)
FINISHED = Counter(
    "vllm:request_success", "Finished requests by finish reason.", [*MODEL, "finished_reason"]
)
RUNNING = Gauge(
    "vllm:num_requests_running", "Requests decoding now.", MODEL, multiprocess_mode="livesum"
)
WAITING = Gauge(
    "vllm:num_requests_waiting",
    "Requests queued for a cache slot.",
    MODEL,
    multiprocess_mode="livesum",
)
PREFIX_QUERIES = Counter(
    "vllm:prefix_cache_queries", "Prompt tokens looked up in the prefix cache.", MODEL
)
PREFIX_HITS = Counter(
    "vllm:prefix_cache_hits",
    "Prompt tokens found in the prefix cache (not prefilled again).",
    MODEL,
)
# No vLLM counterpart; safety.py labels it itself (filter, side), so no model_name.
REFUSED = Counter("llm_refusals_total", "Requests refused by a safety filter.", ["filter", "side"])

# vLLM's finish reasons are stop, length, abort and error: a client that hung up is its abort.
_REASONS = {"cancelled": "abort"}


class PrometheusObserver(Observer):
    """The engine's hooks as metrics of one served model. The labelled series are bound once
    here: the hooks run on the engine thread, per token for the inter-token latency."""

    def __init__(self, model_name: str = "") -> None:
        self.model_name = model_name
        self._ttft, self._itl, self._tpot = (h.labels(model_name) for h in (TTFT, ITL, TPOT))
        self._e2e = E2E.labels(model_name)
        self._prompt = PROMPT_TOKENS.labels(model_name)
        self._generated = GENERATION_TOKENS.labels(model_name)
        self._running, self._waiting = RUNNING.labels(model_name), WAITING.labels(model_name)
        self._queries = PREFIX_QUERIES.labels(model_name)
        self._hits = PREFIX_HITS.labels(model_name)

    def queued(self, waiting: int, running: int) -> None:
        self._waiting.set(waiting)
        self._running.set(running)

    def first_token(self, seconds: float) -> None:
        self._ttft.observe(seconds)

    def inter_token(self, seconds: float) -> None:
        self._itl.observe(seconds)
        self._tpot.observe(seconds)

    def finished(self, prompt: int, output: int, seconds: float, reason: str) -> None:
        self._prompt.inc(prompt)
        self._generated.inc(output)
        self._e2e.observe(seconds)
        FINISHED.labels(self.model_name, _REASONS.get(reason, reason)).inc()

    def prefix_cache(self, prompt: int, cached: int) -> None:
        self._queries.inc(prompt)
        self._hits.inc(cached)
