"""Serving metrics named after vLLM's and TGI's, so their dashboards carry over: time to first
token, inter-token latency, end-to-end latency, token counters, running and waiting requests."""

from prometheus_client import Counter, Gauge, Histogram

from llm_chat.engine import Observer

_FAST = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
_SLOW = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)

TTFT = Histogram("llm_time_to_first_token_seconds", "Queue + prefill until the first token.",
                 buckets=_SLOW)  # fmt: skip
ITL = Histogram("llm_inter_token_latency_seconds", "Time between two tokens of a request.",
                buckets=_FAST)  # fmt: skip
E2E = Histogram("llm_e2e_request_latency_seconds", "Submission to the last token.",
                buckets=_SLOW)  # fmt: skip
PROMPT_TOKENS = Counter("llm_prompt_tokens_total", "Prompt tokens prefilled.")
GENERATION_TOKENS = Counter("llm_generation_tokens_total", "Tokens generated.")
FINISHED = Counter("llm_requests_finished_total", "Requests by finish reason.", ["reason"])
RUNNING = Gauge("llm_requests_running", "Requests decoding now.")
WAITING = Gauge("llm_requests_waiting", "Requests queued for a cache slot.")
REFUSED = Counter("llm_refusals_total", "Requests refused by a safety filter.", ["filter", "side"])


class PrometheusObserver(Observer):
    def __init__(self, model_name: str = "") -> None:
        self.model_name = model_name

    def queued(self, waiting: int, running: int) -> None:
        WAITING.set(waiting)
        RUNNING.set(running)

    def first_token(self, seconds: float) -> None:
        TTFT.observe(seconds)

    def inter_token(self, seconds: float) -> None:
        ITL.observe(seconds)

    def finished(self, prompt: int, output: int, seconds: float, reason: str) -> None:
        PROMPT_TOKENS.inc(prompt)
        GENERATION_TOKENS.inc(output)
        E2E.observe(seconds)
        FINISHED.labels(reason).inc()
