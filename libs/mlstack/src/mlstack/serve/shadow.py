"""Shadow serving: a challenger sees a copy of (a share of) the champion's requests, off the
request path, and its outputs and latency are logged beside the champion's for comparison.

A model whose card has `shadow_of="<champion>"` is not served: `create_app` attaches it to that
champion's deployment, and every successful `Deployment.predict` offers the inputs and the
champion's outputs to it. What keeps the champion's response and latency intact:

- the request path only draws a random number and does a `put_nowait`: the shadow is never
  awaited, and its result cannot reach the response;
- the queue holds `queue_size` requests; when it is full the copy is dropped and counted, so a
  slow or hung challenger costs a bounded amount of memory and no waiting;
- one thread of its own runs the challenger (at most one core of CPU, never the `offload` pool or
  the champion's batcher thread), and on Linux at a lower scheduling priority (`nice`), so when
  the cores are busy the champion's threads run first;
- anything the challenger raises is counted and logged, never re-raised.

Each shadowed item writes one self-contained inference-log record (role "challenger") holding
both models' answers and latencies, so `mlstack shadow-report` needs no join and the log's
sampling cannot split a pair.
"""

import asyncio
import contextlib
import logging
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

from mlstack.monitor.metrics import LATENCY_BUCKETS

if TYPE_CHECKING:
    from mlstack.monitor.inference_log import InferenceLog
    from mlstack.serve.models import ServedModel

log = logging.getLogger("mlstack.serve.shadow")

SHADOW_REQUESTS = Counter(
    "shadow_requests_total",
    "Champion requests offered to a shadow model, by outcome: sampled_out, dropped (queue full), "
    "ok, error, late (answered after shadow_timeout_s; discarded).",
    ["model", "champion", "outcome"],
)
SHADOW_ITEMS = Counter("shadow_items_total", "Items both models answered.", ["model", "champion"])
SHADOW_AGREEMENTS = Counter(
    "shadow_agreements_total",
    "Items where the shadow's label equals the champion's; divide by shadow_items_total "
    "for the agreement rate.",
    ["model", "champion"],
)
SHADOW_AGREEMENT = Gauge(
    "shadow_agreement_ratio",
    "Agreement with the champion since start (this process).",
    ["model", "champion"],
    multiprocess_mode="liveall",
)
SHADOW_LATENCY = Histogram(
    "shadow_model_latency_seconds",
    "Model latency of shadowed requests, by role: the champion's (queue included) and the "
    "challenger's (its own model time), side by side.",
    ["model", "role"],
    buckets=LATENCY_BUCKETS,
)
SHADOW_QUEUE = Gauge(
    "shadow_queue_depth", "Requests waiting for the shadow.", ["model"], multiprocess_mode="livesum"
)


def _lower_priority(nice: int) -> None:
    """Raises this thread's nice value by `nice` (relative: a service already started under
    `nice` stays above its shadow). On Linux a nice value belongs to a thread (a task), so
    `setpriority` on the native thread id lowers the shadow only; elsewhere it would hit the
    whole process, so it is left alone."""
    if nice and sys.platform == "linux":
        tid = threading.get_native_id()
        with contextlib.suppress(OSError):
            os.setpriority(
                os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + nice, 19)
            )


def _describe(model: Any, output: Any) -> dict[str, Any]:
    """What is logged of one output: the model's own `describe(output)` ({"label", "confidence"}
    for a classifier) where it has one, else the output as the label."""
    describe = getattr(model, "describe", None)
    return describe(output) if describe is not None else {"label": output}


@dataclass
class _Job:
    items: list[Any]
    outputs: list[Any]
    champion_seconds: float
    request_id: str | None
    queued: float


class Shadow:
    def __init__(
        self,
        model: "ServedModel",
        champion: "ServedModel",
        *,
        share: float = 1.0,
        queue_size: int = 8,
        timeout_s: float = 10.0,
        seed: int | None = None,
        nice: int = 10,
        inference_log: "InferenceLog | None" = None,
    ) -> None:
        self.model, self.champion = model, champion
        self.name, self.champion_name = model.card.name, champion.card.name
        self.share, self.queue_size, self.timeout_s, self.nice = share, queue_size, timeout_s, nice
        self.inference_log = inference_log
        self._rng = random.Random(seed)  # seeded: which requests are shadowed is reproducible
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        # sampled_out and dropped are counted on the event loop, the rest in the shadow's thread:
        # no key has two writers, so plain ints need no lock.
        self.counts = {"ok": 0, "error": 0, "late": 0, "dropped": 0, "sampled_out": 0}
        self._items = self._agreements = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.queue_size)
        self._executor = ThreadPoolExecutor(
            1,
            thread_name_prefix=f"shadow-{self.name}",
            initializer=_lower_priority,
            initargs=(self.nice,),
        )
        self._worker = asyncio.create_task(self._run(), name=f"shadow-{self.name}")

    async def stop(self) -> None:
        """Stops at once: the shadow's backlog is not worth delaying a shutdown for."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._queue = None

    def _count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        SHADOW_REQUESTS.labels(self.name, self.champion_name, outcome).inc()

    def offer(
        self, items: list[Any], outputs: list[Any], champion_seconds: float, request_id: str | None
    ) -> None:
        """Called on the request path after the champion answered: O(1), never blocks, never
        raises (a shadow must not be able to fail a request)."""
        try:
            if self._queue is None:
                return
            if self.share < 1.0 and self._rng.random() >= self.share:
                self._count("sampled_out")
                return
            job = _Job(items, outputs, champion_seconds, request_id, time.perf_counter())
            self._queue.put_nowait(job)
            SHADOW_QUEUE.labels(self.name).set(self._queue.qsize())
        except asyncio.QueueFull:
            self._count("dropped")
        except Exception:
            log.exception("shadow offer failed", extra={"model": self.name})

    async def _run(self) -> None:
        assert self._queue is not None and self._executor is not None
        loop = asyncio.get_running_loop()
        while True:
            job = await self._queue.get()
            SHADOW_QUEUE.labels(self.name).set(self._queue.qsize())
            # One job in the thread at a time: while a hung challenger holds it, new copies wait
            # in the bounded queue and then drop, rather than piling up in the executor.
            try:
                await loop.run_in_executor(self._executor, self._process, job)
            except Exception:  # comparing or logging failed: say so, and keep shadowing
                log.exception("shadow comparison failed", extra={"model": self.name})

    def _process(self, job: _Job) -> None:
        """In the shadow's thread: run the challenger, compare, log, count."""
        started = time.perf_counter()
        try:
            outputs = self.model.predict_batch(job.items)
            seconds = time.perf_counter() - started
            if len(outputs) != len(job.items):
                raise RuntimeError(f"{len(outputs)} outputs for {len(job.items)} inputs")
        except Exception as exc:
            self._count("error")
            log.warning(
                "shadow model failed: %s: %s",
                type(exc).__name__,
                exc,
                extra={"model": self.name, "request_id": job.request_id},
            )
            return
        if seconds > self.timeout_s:
            self._count("late")
            return
        self._count("ok")
        SHADOW_LATENCY.labels(self.champion_name, "champion").observe(job.champion_seconds)
        SHADOW_LATENCY.labels(self.name, "challenger").observe(seconds)
        self._record(job, outputs, seconds, waited=started - job.queued)

    def _record(self, job: _Job, outputs: list[Any], seconds: float, waited: float) -> None:
        for index, (mine, theirs) in enumerate(zip(outputs, job.outputs, strict=True)):
            challenger, champion = _describe(self.model, mine), _describe(self.champion, theirs)
            agree = challenger.get("label") == champion.get("label")
            self._items += 1
            self._agreements += agree
            SHADOW_ITEMS.labels(self.name, self.champion_name).inc()
            SHADOW_AGREEMENTS.labels(self.name, self.champion_name).inc(agree)
            if self.inference_log is not None:
                self.inference_log.log(
                    {
                        "model": self.name,
                        "role": "challenger",
                        "version": self.model.card.version,
                        "champion": self.champion_name,
                        "champion_version": self.champion.card.version,
                        "request_id": job.request_id,
                        "item": index,
                        **challenger,
                        **{f"champion_{k}": v for k, v in champion.items()},
                        "agree": agree,
                        "latency_ms": round(seconds * 1000, 3),
                        "champion_latency_ms": round(job.champion_seconds * 1000, 3),
                        "queue_ms": round(waited * 1000, 3),
                    }
                )
        SHADOW_AGREEMENT.labels(self.name, self.champion_name).set(
            self._agreements / self._items if self._items else 0.0
        )

    def describe(self) -> dict[str, Any]:
        """For `GET /v1/models`: which model shadows the champion, and how."""
        card = self.model.card
        return {
            "model": card.name,
            "version": card.version,
            "sha256": card.sha256,
            "share": self.share,
            "queue_size": self.queue_size,
            "counts": dict(self.counts),
        }
