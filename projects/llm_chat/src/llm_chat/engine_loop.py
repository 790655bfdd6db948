"""The native engine's scheduling thread: it owns the model and loops over admit waiting requests
into free cache slots (prefill) -> one chunk of a long prompt (prefill.py) -> one batched decode
step for all of them, so a request joins or leaves the batch between any two tokens.

`Engine` (engine.py) is this loop plus what the event loop calls; `OVEngine` (ov_engine.py)
replaces the prefill, the step and the finish with OpenVINO's pipeline.
"""

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from llm_chat.backends import Backend
from llm_chat.detokenize import TextStream
from llm_chat.engine_api import Delta, Request, deliver
from llm_chat.prefill import prefill_chunk
from llm_chat.sampling import Sampler, TokenLogprob

log = logging.getLogger("llm_chat.engine")


@dataclass
class Running:
    """A request holding a cache slot, from its prefill to its finishing delta."""

    request: Request
    sampler: Sampler
    text: TextStream
    position: int  # where the next token goes
    token: int  # the last sampled token, fed at the next step
    output: int = 0
    last_emit: float = 0.0
    cached: int = 0  # prompt tokens reused from the slot's prefix
    fed: list[int] = field(default_factory=list)  # tokens whose KV the slot holds, in order

    @property
    def prefilling(self) -> bool:
        """Its prompt is still being prefilled in chunks; `position` is the next one to write."""
        return self.position < len(self.request.prompt)

    def taken(self) -> list[TokenLogprob]:
        """Logprob entries not yet sent (OVEngine's running requests answer this too)."""
        return self.sampler.take_logprobs()


class EngineLoop:
    """The methods that run on the engine thread. `Engine.__init__` sets the state they share
    with the caller's side: the waiting queue and its condition, the slots, the prefix cache."""

    def _report(self) -> None:
        self.observer.queued(*self.load())

    def _run(self, backend: Backend | Callable[[], Backend], built: Future) -> None:
        try:
            built.set_result(backend() if callable(backend) else backend)
        except BaseException as exc:  # whatever it is, the caller waiting on `built` gets it
            built.set_exception(exc)
            return
        self._go.wait()
        if not self._stop:
            self._loop()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._stop and not self._waiting and not any(self._slots):
                    self._wake.wait()
                if self._stop:
                    break
            try:
                self._admit()
                prefill_chunk(self)
                self._step()
            except Exception:  # a failed batched decode ends the running requests, not the engine
                log.exception("decode step failed; ending the running requests")
                for slot, running in enumerate(self._slots):
                    if running:
                        self._finish(slot, "error")
            self._flush()
        for slot, running in enumerate(self._slots):
            if running:
                self._finish(slot, "cancelled")
        with self._wake:
            waiting, self._waiting = list(self._waiting), collections.deque()
        for request in waiting:
            self._emit(request, Delta(finish_reason="cancelled"))
        self._flush()

    def _emit(self, request: Request, delta: Delta) -> None:
        if request.queue is not None:
            self._outbox.append((request, delta))
            return
        try:
            request.emit(delta)
        except Exception:  # a consumer that fails only loses its own request
            log.exception("request %d: emit failed; cancelling it", request.id)
            request.cancelled = True

    def _flush(self) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Request, Delta]]] = {}
        for request, delta in self._outbox:
            by_loop.setdefault(request.loop, []).append((request, delta))
        self._outbox.clear()
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(deliver, [(r.queue, d) for r, d in items])
            except RuntimeError:  # that event loop has closed: nobody reads these any more
                for request, _ in items:
                    request.cancelled = True

    def _admit(self) -> None:
        while True:
            with self._wake:
                if not self._waiting or None not in self._slots:
                    return
                request = self._waiting.popleft()
                self._prefilling += 1
                self._report()
            try:
                if request.cancelled:
                    self._emit(request, Delta(finish_reason="cancelled"))
                    continue
                free = [i for i, s in enumerate(self._slots) if s is None]
                slot = self.prefixes.pick(free, request.prompt) if self.prefixes else free[0]
                try:
                    running = self._prefill(slot, request)
                except Exception:  # this request fails alone; the batch goes on
                    log.exception("request %d: prefill failed", request.id)
                    self._emit(request, Delta(finish_reason="error"))
                    self.observer.finished(
                        len(request.prompt), 0, time.perf_counter() - request.created, "error"
                    )
                    continue
                self._place(slot, running)
            finally:
                with self._wake:
                    self._prefilling -= 1
            if not (self.chunk_tokens and running.prefilling):  # else: chunks, then started
                self._started(slot, running)

    def _place(self, slot: int, running: Running) -> None:
        self._slots[slot] = running

    def _started(self, slot: int, running: Running) -> None:
        """The prefill sampled the first token: it goes out now, not after the next step."""
        now = time.perf_counter()
        self.observer.first_token(now - running.request.created)
        running.last_emit = now
        self._accept_or_fail(slot, running)
        self._flush()

    def _prefill(self, slot: int, request: Request) -> Running:
        # The sampler compiles the grammar first: an invalid one fails before any prefill.
        sampler = Sampler(
            request.params,
            request.prompt,
            self.backend.vocab_size,
            tokenizer=self.tokenizer,
            stop_tokens=self.eos,
        )
        prompt = request.prompt
        cached = self.prefixes.take(slot, prompt) if self.prefixes else 0
        text = TextStream(self.tokenizer, request.params.stop)
        if self.chunk_tokens and len(prompt) - cached > self.chunk_tokens:
            if len(prompt) > self.backend.max_len:  # fail now, not after chunks
                raise ValueError(f"prompt of {len(prompt)} tokens exceeds the context")
            return Running(
                request,
                sampler,
                text,
                position=cached,
                token=-1,
                cached=cached,
                fed=prompt[:cached],
            )
        if cached:
            logits = self.backend.prefill(slot, prompt[cached:], start=cached)
        else:
            logits = self.backend.prefill(slot, prompt)
        self.observer.prefix_cache(len(prompt), cached)
        return Running(
            request,
            sampler,
            text,
            position=len(prompt),
            token=sampler(logits),
            cached=cached,
            fed=list(prompt),
        )

    def _step(self) -> None:
        active = [i for i, s in enumerate(self._slots) if s is not None and not s.prefilling]
        if not active:
            return
        width = active[-1] + 1  # slots 0..width-1 decode together; idle ones are ignored
        tokens = [0] * width
        # An idle slot's dummy row writes past the prefix it keeps (position 0 would spoil it);
        # a prefilling slot's at its next prompt position, which its next chunk overwrites.
        positions = [self.prefixes.idle_position(i) if self.prefixes else 0 for i in range(width)]
        for i in range(width):
            if self._slots[i] is not None and self._slots[i].prefilling:
                positions[i] = self._slots[i].position
        for i in active:
            tokens[i], positions[i] = self._slots[i].token, self._slots[i].position
            self._slots[i].fed.append(self._slots[i].token)
        logits = self.backend.decode(tokens, positions)
        now = time.perf_counter()
        for i in active:
            running = self._slots[i]
            running.position += 1
            self.observer.inter_token(now - running.last_emit)
            running.last_emit = now
            self._accept_or_fail(i, running, logits[i])

    def _accept_or_fail(self, slot: int, running: Running, logits=None) -> None:
        """Samples (after a decode step) and accepts one token; an error here (sampling,
        detokenizing) ends this request only."""
        try:
            if logits is not None:
                running.token = running.sampler(logits)
            self._accept(slot, running)
        except Exception:
            log.exception("request %d: token handling failed", running.request.id)
            if self._slots[slot] is running:
                self._finish(slot, "error")

    def _accept(self, slot: int, running: Running) -> None:
        """Emits the token just sampled (`running.token`) and ends the request when it is done."""
        request, params = running.request, running.request.params
        if request.cancelled:
            return self._finish(slot, "cancelled")
        if running.token in self.eos or running.sampler.terminated:  # a grammar's stop token
            running.sampler.drop_last_logprob()
            return self._finish(slot, "stop")
        running.output += 1
        piece, stopped = running.text.push(running.token)
        if piece:  # with the logprobs of every token since the last piece
            self._emit(request, Delta(piece, running.output, logprobs=running.taken()))
        if stopped:
            return self._finish(slot, "stop")
        if running.output >= params.max_tokens or running.position >= self.backend.max_len:
            return self._finish(slot, "length")
        return None

    def _finish(self, slot: int, reason: str) -> None:
        running = self._slots[slot]
        self._slots[slot] = None
        tail = ""
        if reason in ("stop", "length"):
            try:
                tail = running.text.flush()
            except Exception:
                log.exception("request %d: final detokenize failed", running.request.id)
                reason = "error"
        if self.prefixes:  # after a failure the slot's keys and values are not to be trusted
            self.prefixes.release(slot, running.fed if reason != "error" else [])
        self._emit(
            running.request,
            Delta(tail, running.output, reason, running.taken(), getattr(running, "cached", None)),
        )
        self.observer.finished(
            len(running.request.prompt),
            running.output,
            time.perf_counter() - running.request.created,
            reason,
        )
        with self._wake:
            self._report()
