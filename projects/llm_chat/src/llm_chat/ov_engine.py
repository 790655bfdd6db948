"""The production engine: OpenVINO GenAI's continuous-batching pipeline behind `Engine`'s surface
(`submit`, `stream`, `load`, `stop`, the same `Delta`s, bounded queue and `QueueFullError`), so
the service needs no special case.

OpenVINO schedules the batch itself: paged KV cache, chunked prefill (`dynamic_split_fuse`: a
long prompt is prefilled `max_num_batched_tokens` at a time between decode steps instead of
stalling every stream) and prefix caching (a shared system prompt is prefilled once). Our thread
admits requests (`add_request`), calls `step()` and reads each request's new token ids from its
handle. Text comes from the same Python detokenizer as the native engine (the export has no
OpenVINO tokenizer), which also finds stop strings; the handle is then cancelled.

Sampling runs inside OpenVINO. Refused with a 400, not silently changed: presence and frequency
penalties (OpenVINO moves a negative logit *up* by the penalty, OpenAI always subtracts it).
"""

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from llm_chat.detokenize import TextStream
from llm_chat.engine import Delta, Engine, Observer, Request
from llm_chat.sampling import SamplingParams
from mlstack.serve import APIError

log = logging.getLogger("llm_chat.ov_engine")
BLOCK_TOKENS = 32  # the CPU plugin's KV cache block
MIN_TEMPERATURE = 1e-4  # as sampling.py: below it, greedy
TINY = 1e-30  # the smallest penalty and top_p passed on: float32 keeps it, and it acts as 0+


@dataclass
class OVModel:
    """The exported folder loaded as a pipeline; `slots`, `max_len` and `name` as on a backend."""

    pipe: object
    name: str
    slots: int
    max_len: int
    vocab_size: int


def load_pipeline(ov_dir: str | Path, *, slots: int, max_len: int, threads: int = 0,
                  precision: str | None = None, chunk_tokens: int = 256,
                  prefix_caching: bool = True) -> OVModel:  # fmt: skip
    """The KV cache holds `slots` full contexts, so an admitted request never waits for blocks
    (a request that can never fit would wait forever: OpenVINO does not refuse it).
    `precision`: the CPU plugin's inference precision; None = its default (bf16 where the CPU
    has AMX/AVX512-BF16, else f32)."""
    import json

    import openvino_genai as og

    config = json.loads((Path(ov_dir) / "config.json").read_text())
    max_len = min(max_len, config.get("max_position_embeddings", max_len))
    scheduler = og.SchedulerConfig()
    scheduler.cache_size = 0  # sized by blocks instead
    scheduler.num_kv_blocks = slots * math.ceil(max_len / BLOCK_TOKENS)
    scheduler.max_num_seqs = slots
    scheduler.max_num_batched_tokens = max(chunk_tokens, slots)
    scheduler.dynamic_split_fuse = True
    scheduler.enable_prefix_caching = prefix_caching
    properties: dict = {"INFERENCE_NUM_THREADS": threads} if threads else {}
    if precision:
        properties["INFERENCE_PRECISION_HINT"] = precision
    pipe = og.ContinuousBatchingPipeline(str(ov_dir), scheduler, "CPU", properties)
    exported = Path(ov_dir) / "export.json"  # written by ov_export.py: its weight format
    weights = json.loads(exported.read_text())["weights"] if exported.exists() else "unknown"
    return OVModel(pipe, f"openvino-{weights}", slots, max_len, config["vocab_size"])


def generation_config(params: SamplingParams, max_new_tokens: int, eos: set[int]):
    """OpenVINO's config for `params`, or an APIError (400) naming what it cannot honour."""
    import openvino_genai as og

    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(params, name):
            raise APIError(400, "unsupported_parameter",
                           f"{name} is not supported by the openvino backend (its penalty moves "
                           "negative logits up); leave it 0 or serve with backend native",
                           param=name)  # fmt: skip
    config = og.GenerationConfig()
    config.max_new_tokens = max_new_tokens
    if eos:
        config.stop_token_ids = set(eos)
    else:
        config.ignore_eos = True
    # OpenVINO holds these as float32: a valid 1e-300 would become 0 and be refused.
    config.repetition_penalty = max(params.repetition_penalty, TINY)
    if params.temperature >= MIN_TEMPERATURE:  # below it greedy, as in sampling.py
        config.do_sample = True
        config.temperature = params.temperature
        config.top_p = max(params.top_p, TINY)
        if params.top_k:
            config.top_k = params.top_k
        # OpenVINO's seed defaults to 0: unseeded requests would all draw the same tokens.
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        config.rng_seed = seed % 2**64
    else:
        config.do_sample = False
    try:
        config.validate()
    except RuntimeError as exc:  # the schema should have refused it; still the client's 400
        raise APIError(400, "unsupported_parameter", f"the openvino backend refused the "
                       f"sampling parameters: {str(exc).splitlines()[-1]}") from None  # fmt: skip
    return config


@dataclass
class _Running:
    request: Request
    handle: object
    text: TextStream
    max_new: int
    output: int = 0
    last_emit: float = 0.0


class OVEngine(Engine):
    """`Engine`'s queueing, delivery and shutdown; OpenVINO's scheduler and sampling."""

    def __init__(self, model: OVModel, tokenizer, *, eos: set[int], max_queue: int = 64,
                 observer: Observer | None = None) -> None:  # fmt: skip
        import numpy as np
        import openvino as ov

        self._tensor = lambda ids: ov.Tensor(np.array([ids], dtype=np.int64))
        self.pipe = model.pipe
        super().__init__(model, tokenizer, eos=eos, max_queue=max_queue, observer=observer)

    def submit(self, prompt: list[int], params: SamplingParams, emit=None, *, queue=None,
               loop=None) -> Request:  # fmt: skip
        # Refusals (400) happen here, on the caller's side, before the request is queued.
        generation_config(params, 1, self.eos)
        return super().submit(prompt, params, emit, queue=queue, loop=loop)

    # --- the engine thread ----------------------------------------------------------------
    def _prefill(self, slot: int, request: Request) -> _Running:
        """Hands the request to OpenVINO; its first token comes from a later `step()`."""
        room = self.backend.max_len - len(request.prompt)
        if room <= 0:
            raise ValueError(f"prompt of {len(request.prompt)} tokens fills the context")
        max_new = min(request.params.max_tokens, room)
        config = generation_config(request.params, max_new, self.eos)
        handle = self.pipe.add_request(request.id, self._tensor(request.prompt), config)
        return _Running(request, handle, TextStream(self.tokenizer, request.params.stop), max_new)

    def _admit(self) -> None:
        """`Engine._admit` without its first token: that comes with a later step."""
        while True:
            with self._wake:
                if not self._waiting or None not in self._slots:
                    return
                request = self._waiting.popleft()
                self._prefilling += 1  # as in Engine: `submit` counts this slot as taken
                self._report()
            try:
                if request.cancelled:
                    self._emit(request, Delta(finish_reason="cancelled"))
                    continue
                try:
                    running = self._prefill(0, request)
                except Exception:  # this request fails alone; the batch goes on
                    log.exception("request %d: add_request failed", request.id)
                    self._emit(request, Delta(finish_reason="error"))
                    self.observer.finished(len(request.prompt), 0,
                                           time.perf_counter() - request.created, "error")  # fmt: skip
                    continue
                self._slots[self._slots.index(None)] = running
            finally:
                with self._wake:
                    self._prefilling -= 1

    def _step(self) -> None:
        if not any(self._slots):
            return
        if self.pipe.has_non_finished_requests():
            self.pipe.step()
        now = time.perf_counter()
        for slot, running in enumerate(self._slots):
            if running is None:
                continue
            try:
                self._read(slot, running, now)
            except Exception:
                log.exception("request %d: token handling failed", running.request.id)
                if self._slots[slot] is running:
                    self._finish(slot, "error")
        if not any(self._slots) and self.pipe.has_non_finished_requests():
            # Cancelled handles leave the pipeline (and free their KV blocks) in a step; the
            # loop sleeps once no request runs, so take that step now.
            self.pipe.step()

    def _read(self, slot: int, running: _Running, now: float) -> None:
        import openvino_genai as og

        handle, request = running.handle, running.request
        if request.cancelled:
            return self._finish(slot, "cancelled")
        if handle.can_read():
            for output in handle.read().values():
                for token in output.generated_ids:
                    if self._accept_token(slot, running, token, now):
                        return None
        status = handle.get_status()
        if status == og.GenerationStatus.RUNNING:
            return None
        if status == og.GenerationStatus.FINISHED:
            return self._finish(slot, "length" if running.output >= running.max_new else "stop")
        return self._finish(slot, "error")  # IGNORED (no room), or dropped by the pipeline

    def _accept_token(self, slot: int, running: _Running, token: int, now: float) -> bool:
        """Emits one token; True once the request has ended."""
        if running.output == 0:
            self.observer.first_token(now - running.request.created)
        else:
            self.observer.inter_token(now - running.last_emit)
        running.last_emit = now
        if token in self.eos:
            self._finish(slot, "stop")
            return True
        running.output += 1
        piece, stopped = running.text.push(token)
        if piece:
            self._emit(running.request, Delta(piece, running.output))
        if stopped:
            self._finish(slot, "stop")
            return True
        return False

    def _finish(self, slot: int, reason: str) -> None:
        running = self._slots[slot]
        try:  # frees its KV blocks at the next step; a no-op on a finished handle
            running.handle.cancel()
        except Exception:
            log.exception("request %d: cancel failed", running.request.id)
        super()._finish(slot, reason)


def engine_for(backend, tokenizer, **options) -> Engine:
    """The engine that drives `backend` (a `load_backend` result): same arguments, same
    surface."""
    return (OVEngine if isinstance(backend, OVModel) else Engine)(backend, tokenizer, **options)
