"""Prometheus metrics shared by every service, labelled by `model` where a model is involved.

Under several uvicorn workers set `PROMETHEUS_MULTIPROC_DIR` (`mlstack.serve.run` does it): each
worker then writes its samples to files there and `render()` aggregates them on scrape.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
MODEL_REQUESTS = Counter(
    "model_requests_total", "Inference requests by model and outcome.", ["model", "status"]
)
# Observed once per request (`MicroBatcher.submit_many`: all of a request's items, from queueing
# to the last result), not per item: per-item time is QUEUE_WAIT plus the batch's BATCH_LATENCY.
MODEL_LATENCY = Histogram(
    "model_request_duration_seconds",
    "End-to-end inference latency per request (all its items together), queue included.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "model_batch_size",
    "Items per batch the model ran.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCH_LATENCY = Histogram(
    "model_batch_duration_seconds", "Model time per batch.", ["model"], buckets=LATENCY_BUCKETS
)
QUEUE_DEPTH = Gauge(
    "model_queue_depth", "Items waiting for the model.", ["model"], multiprocess_mode="livesum"
)
QUEUE_WAIT = Histogram(
    "model_queue_wait_seconds",
    "Time an item waited before its batch ran.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
CONFIDENCE = Histogram(
    "model_prediction_confidence",
    "Probability of the top prediction.",
    ["model"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
PREDICTIONS = Counter(
    "model_predictions_total", "Predictions by model and predicted label.", ["model", "label"]
)
MODEL_INFO = Gauge(
    "model_info",
    "Loaded models (value 1), with version and checksum.",
    ["model", "version", "sha256"],
    multiprocess_mode="max",
)


# A client may send any token as its method, and every new label value is a new time series
# (memory in each worker and in Prometheus without bound): methods outside these are "other".
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in HTTP_METHODS else "other"
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def observe_prediction(model: str, label: str, confidence: float) -> None:
    PREDICTIONS.labels(model, label).inc()
    CONFIDENCE.labels(model).observe(confidence)


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition of this process, or of all workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
