"""Continuous batching: one thread (engine_loop.py) owns the model and loops over
admit waiting requests into free cache slots (prefill) -> one chunk of a long prompt (prefill.py)
-> one batched decode step for all of them, so a request joins or leaves the batch between any
two tokens. Requests wait in a bounded queue; a full queue refuses new ones at once (the service
answers 503 with Retry-After).

Each request gets its output as `Delta`s on an asyncio queue: text pieces, then a finish reason.
"""

import asyncio
import collections
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future

from llm_chat.backends import Backend
from llm_chat.engine_api import (
    Delta,
    Observer,
    QueueFullError,
    Request,
    RequestStream,
)
from llm_chat.engine_loop import EngineLoop, Running
from llm_chat.prefix_cache import SlotPrefixes
from llm_chat.sampling import SamplingParams


class Engine(EngineLoop):
    """`max_queue` requests may wait beyond the free slots (0: a request starts at once or is
    refused). Every submitted request ends with exactly one finishing delta, whatever fails."""

    def __init__(
        self,
        backend: Backend | Callable[[], Backend],
        tokenizer,
        *,
        eos: set[int],
        max_queue: int = 64,
        observer: Observer | None = None,
        chunk_tokens: int = 256,
    ) -> None:
        """`backend` may be a function that builds it: the engine thread calls it, so a PyTorch
        model loads on the thread that runs it. libgomp gives each thread that starts parallel
        work an OpenMP pool of its own, and with two pools on 2 cores their workers stop
        spin-waiting (its throttled spin count): every layer then waits on a futex wake-up.
        Native decoded 17 tokens/s loaded on another thread, 27 loaded on the engine's."""
        self.tokenizer, self.eos, self.max_queue = tokenizer, eos, max_queue
        self.observer = observer or Observer()
        self._waiting: collections.deque[Request] = collections.deque()
        self._prefilling = 0  # requests taken from the queue whose slot is not yet set
        self._wake = threading.Condition()
        self._ids = itertools.count(1)
        self._stop = False
        # Deltas for asyncio consumers go out once per step, one wake-up per event loop: a
        # wake-up per token per request made the event loop fight the decode for the 2 cores.
        self._outbox: list[tuple[Request, Delta]] = []
        built: Future = Future()
        self._go = threading.Event()  # the loop starts once this constructor is done
        self._thread = threading.Thread(
            target=self._run, args=(backend, built), name="llm-engine", daemon=True
        )
        self._thread.start()
        self.backend = backend = built.result()  # a failed build raises here, in the caller
        try:
            self._slots: list[Running | None] = [None] * backend.slots
            # Prefix caching where the backend can prefill from an offset (native's slot cache).
            self.prefixes = (
                SlotPrefixes(backend.slots, backend.max_len)
                if getattr(backend, "reuses_prefix", False)
                else None
            )
            # Chunks need the same offset prefill; 0: a prompt is prefilled in one pass.
            self.chunk_tokens = chunk_tokens if self.prefixes else 0
        except BaseException:
            self._stop = True  # the thread ends rather than wait for a loop that never comes
            raise
        finally:
            self._go.set()

    # --- called from the event loop -------------------------------------------------------
    def check(self, params: SamplingParams) -> None:
        """Raises an APIError (400) for what this engine cannot honour; called before queueing."""

    def submit(
        self,
        prompt: list[int],
        params: SamplingParams,
        emit: Callable[[Delta], None] | None = None,
        *,
        queue: asyncio.Queue | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Request:
        return self._enqueue([Request(prompt, params, emit, queue, loop)])[0]

    def streams(self, prompt: list[int], choices: list[SamplingParams]) -> list[RequestStream]:
        """One stream of deltas per choice (`n`), admitted together or refused together with
        QueueFullError: a refusal never leaves some of a request's choices running."""
        loop = asyncio.get_running_loop()
        requests = [Request(prompt, params, None, asyncio.Queue(), loop) for params in choices]
        return [RequestStream(request, request.queue) for request in self._enqueue(requests)]

    def stream(self, prompt: list[int], params: SamplingParams) -> RequestStream:
        """Deltas until the finishing one; closing the stream early cancels the request."""
        return self.streams(prompt, [params])[0]

    def _enqueue(self, requests: list[Request]) -> list[Request]:
        for request in requests:
            self.check(request.params)
        with self._wake:
            free = self._slots.count(None) - self._prefilling
            if len(self._waiting) + len(requests) - free > self.max_queue:
                raise QueueFullError(
                    f"{len(self._waiting)} requests are already waiting"
                    + (f", no room for {len(requests)} choices" if len(requests) > 1 else "")
                )
            for request in requests:
                request.id = next(self._ids)
                self._waiting.append(request)
            self._report()
            self._wake.notify()
        return requests

    def load(self) -> tuple[int, int]:
        """(waiting, running) requests."""
        return len(self._waiting), sum(s is not None for s in self._slots)

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=10)
