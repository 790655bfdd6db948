"""The production engine: OpenVINO GenAI's continuous-batching pipeline behind `Engine`'s surface
(`submit`, `stream`, `load`, `stop`, the same `Delta`s, bounded queue and `QueueFullError`), so
the service needs no special case.

OpenVINO schedules the batch itself: paged KV cache, chunked prefill (`dynamic_split_fuse`: a
long prompt is prefilled `max_num_batched_tokens` at a time between decode steps instead of
stalling every stream) and prefix caching (a shared system prompt is prefilled once), as
ov_config.py sets its scheduler up. The pipeline runs in a worker process (ov_worker.py: its
`step()` holds the GIL); our thread sends it new requests and cancellations, one `step()` per
tick, and gets each request's new token ids. Text comes from the same Python detokenizer as the
native engine (the export has no OpenVINO tokenizer), which also finds stop strings; the request
is then cancelled in the worker. Sampling runs inside OpenVINO (ov_config.py: what it refuses).
"""

import functools
import json
import logging
import time
from dataclasses import dataclass, field

from llm_chat.detokenize import TextStream
from llm_chat.engine import Engine
from llm_chat.engine_api import Delta, Observer, Request
from llm_chat.ov_config import OVModel, generation_options
from llm_chat.sampling import SamplingParams, TokenLogprob
from mlstack.serve import APIError

log = logging.getLogger("llm_chat.ov_engine")


@dataclass
class _Running:
    request: Request
    text: TextStream
    max_new: int
    output: int = 0
    last_emit: float = 0.0
    ended: bool = False  # the worker reported it finished: nothing to cancel there
    logprobs: list[TokenLogprob] = field(default_factory=list)  # not yet sent

    def taken(self) -> list[TokenLogprob]:
        taken, self.logprobs = self.logprobs, []
        return taken


class OVEngine(Engine):
    """`Engine`'s queueing, delivery and shutdown; OpenVINO's scheduler and sampling."""

    def __init__(
        self,
        model: OVModel,
        tokenizer,
        *,
        eos: set[int],
        max_queue: int = 64,
        observer: Observer | None = None,
        chunk_tokens: int = 256,
    ) -> None:
        """`chunk_tokens` is `Engine`'s, ignored here: the pipeline chunks its prefills itself,
        as its scheduler was configured at load (`load_pipeline`, ov_config.py)."""
        self.model = model
        self._commands: list[tuple] = []  # for the worker's next tick
        self._slot_of: dict[int, int] = {}  # request id -> slot
        self.pending = False  # the worker holds unfinished requests (as of the last tick)
        self._start_worker()
        super().__init__(model, tokenizer, eos=eos, max_queue=max_queue, observer=observer)

    def _start_worker(self) -> None:
        from llm_chat.ov_worker import spawn

        m = self.model
        self.worker, self._conn = spawn(m.ov_dir, m.scheduler, m.properties)

    def check(self, params: SamplingParams) -> None:
        # Refusals (400) happen here, on the caller's side, before the request is queued.
        generation_options(params, 1, self.eos)
        if params.grammar is not None and "Regex(" in json.dumps(params.grammar):
            # The xgrammar inside OpenVINO GenAI 2026.4 cannot parse the Regex rule a schema's
            # `pattern` becomes: its worker died on the first step, ending every stream.
            raise APIError(
                400,
                "unsupported_parameter",
                "a JSON schema `pattern` is not "
                "supported by the openvino backend; drop it (maxLength, enum and "
                "format work) or serve with backend native",
                param="response_format",
            )
        if params.grammar is not None and not self.model.structured:
            raise APIError(
                400,
                "unsupported_parameter",
                "structured output needs OpenVINO's "
                f"tokenizer models in {self.model.ov_dir}: add them with `python -m "
                "llm_chat.ov_export DIR --tokenizer-only`",
                param="response_format",
            )

    def stop(self) -> None:
        super().stop()
        self._conn.close()  # the worker reads EOF and exits
        self.worker.join(timeout=10)
        if self.worker.is_alive():
            self.worker.kill()

    # --- the engine thread ----------------------------------------------------------------
    def _prefill(self, slot: int, request: Request) -> _Running:
        """Queues the request for the worker; its first token comes with a later tick."""
        room = self.backend.max_len - len(request.prompt)
        if room <= 0:
            raise ValueError(f"prompt of {len(request.prompt)} tokens fills the context")
        if min(request.prompt) < 0 or max(request.prompt) >= self.backend.vocab_size:
            # OpenVINO does not check: it would embed whatever lies past its table.
            raise ValueError(f"a token id outside the vocabulary of {self.backend.vocab_size}")
        max_new = min(request.params.max_tokens, room)
        options = generation_options(request.params, max_new, self.eos)
        self._commands.append(("add", request.id, request.prompt, options))
        return _Running(request, TextStream(self.tokenizer, request.params.stop), max_new)

    def _place(self, slot: int, running: _Running) -> None:
        self._slots[slot], self._slot_of[running.request.id] = running, slot

    def _started(self, slot: int, running: _Running) -> None:
        """Nothing to send yet: the first token comes with a later tick of the pipeline."""

    def _step(self) -> None:
        for slot, running in enumerate(self._slots):
            if running is not None and running.request.cancelled:
                self._finish(slot, "cancelled")
        if not any(self._slots) and not self._commands:
            return
        commands, self._commands = self._commands, []
        try:
            self._conn.send(commands)
            results, self.pending = self._conn.recv()  # the GIL is free while the worker steps
        except (EOFError, OSError):
            return self._restart()
        now = time.perf_counter()
        for rid, tokens, logprobs, status in results:
            slot = self._slot_of.get(rid)
            if slot is None:  # ended here already (cancelled, stop string)
                continue
            running = self._slots[slot]
            try:
                self._read(slot, running, tokens, logprobs, status, now)
            except Exception:
                log.exception("request %d: token handling failed", rid)
                if self._slots[slot] is running:
                    self._finish(slot, "error")
        if not any(self._slots) and self._commands:
            self._step()  # hand over the last cancellations: the loop sleeps once none runs
        return None

    def _restart(self) -> None:
        self.worker.join(timeout=5)
        log.error(
            "the OpenVINO worker died (exit code %s): ending its requests, starting a new one",
            self.worker.exitcode,
        )
        for slot, running in enumerate(self._slots):
            if running is not None:
                running.ended = True
                self._finish(slot, "error")
        self._commands.clear()
        self._start_worker()

    def _read(
        self,
        slot: int,
        running: _Running,
        tokens: list[int],
        logprobs: list[float],
        status: str,
        now: float,
    ) -> None:
        wanted = running.request.params.logprobs is not None
        for token, logprob in zip(tokens, logprobs or [0.0] * len(tokens), strict=True):
            if wanted and token not in self.eos:
                running.logprobs.append(TokenLogprob(token, logprob))
            if self._accept_token(slot, running, token, now):
                return
        if status == "RUNNING":
            return
        running.ended = True
        if status == "FINISHED":
            self._finish(slot, "length" if running.output >= running.max_new else "stop")
        elif status in ("CANCEL", "STOP"):
            self._finish(slot, "cancelled")
        else:  # IGNORED (no room in the cache), or the worker could not add it
            log.error("request %d: %s", running.request.id, status)
            self._finish(slot, "error")

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
            self._emit(running.request, Delta(piece, running.output, logprobs=running.taken()))
        if stopped:
            self._finish(slot, "stop")
            return True
        return False

    def _finish(self, slot: int, reason: str) -> None:
        running = self._slots[slot]
        self._slot_of.pop(running.request.id, None)
        if not running.ended:  # frees its KV blocks in the worker
            self._commands.append(("cancel", running.request.id))
        super()._finish(slot, reason)


def engine_for(kind: str, model_dir, tokenizer, *, backend_options: dict, **options) -> Engine:
    """The engine that drives the `kind` backend (see `load_backend`), same surface for all.
    OpenVINO's loads in its worker process; any other on the engine's thread (see `Engine`)."""
    from llm_chat.backends import load_backend, resolve_kind

    kind = resolve_kind(kind, model_dir, backend_options.get("ov_dir"))
    build = functools.partial(load_backend, kind, model_dir, **backend_options)
    if kind == "openvino":
        return OVEngine(build(), tokenizer, **options)
    return Engine(build, tokenizer, **options)
