"""The production engine: OpenVINO GenAI's continuous-batching pipeline behind `Engine`'s surface
(`submit`, `stream`, `load`, `stop`, the same `Delta`s, bounded queue and `QueueFullError`), so
the service needs no special case.

OpenVINO schedules the batch itself: paged KV cache, chunked prefill (`dynamic_split_fuse`: a
long prompt is prefilled `max_num_batched_tokens` at a time between decode steps instead of
stalling every stream) and prefix caching (a shared system prompt is prefilled once). The
pipeline runs in a worker process (ov_worker.py: its `step()` holds the GIL); our thread sends it
new requests and cancellations, one `step()` per tick, and gets each request's new token ids.
Text comes from the same Python detokenizer as the native engine (the export has no OpenVINO
tokenizer), which also finds stop strings; the request is then cancelled in the worker.

Sampling runs inside OpenVINO, structured output too (xgrammar, from the format in grammar.py;
it needs the export's OpenVINO detokenizer, whose vocabulary it reads). Refused with a 400, not
silently changed: presence and frequency penalties (OpenVINO moves a negative logit *up* by the
penalty, OpenAI always subtracts it), `logit_bias` (not offered) and top logprobs (OpenVINO
reports the sampled token's log-probability only): the native backend serves them.
"""

import functools
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from llm_chat.detokenize import TextStream
from llm_chat.engine import Delta, Engine, Observer, Request, TokenLogprob
from llm_chat.sampling import SamplingParams
from mlstack.serve import APIError

log = logging.getLogger("llm_chat.ov_engine")
BLOCK_TOKENS = 32  # the CPU plugin's KV cache block
MIN_TEMPERATURE = 1e-4  # as sampling.py: below it, greedy
TINY = 1e-30  # the smallest penalty and top_p passed on: float32 keeps it, and it acts as 0+


@dataclass
class OVModel:
    """An exported folder and how to run it (`OVEngine` starts it in a worker process);
    `name`, `slots`, `max_len` and `vocab_size` as on a backend."""

    name: str
    slots: int
    max_len: int
    vocab_size: int
    ov_dir: str
    scheduler: dict
    properties: dict
    structured: bool = False  # the export has OpenVINO's detokenizer: structured output works


def load_pipeline(
    ov_dir: str | Path,
    *,
    slots: int,
    max_len: int,
    threads: int = 0,
    precision: str | None = None,
    chunk_tokens: int = 256,
    prefix_caching: bool = True,
) -> OVModel:
    """The KV cache holds `slots` full contexts, so an admitted request never waits for blocks
    (a request that can never fit would wait forever: OpenVINO does not refuse it).
    `precision`: the CPU plugin's inference precision; None = its default (bf16 where the CPU
    has AMX/AVX512-BF16, else f32)."""
    import json

    config = json.loads((Path(ov_dir) / "config.json").read_text())
    max_len = min(max_len, config.get("max_position_embeddings", max_len))
    scheduler = {
        "cache_size": 0,  # sized by blocks instead
        "num_kv_blocks": slots * math.ceil(max_len / BLOCK_TOKENS),
        "max_num_seqs": slots,
        "max_num_batched_tokens": max(chunk_tokens, slots),
        "dynamic_split_fuse": True,
        "enable_prefix_caching": prefix_caching,
    }
    properties: dict = {"INFERENCE_NUM_THREADS": threads} if threads else {}
    if precision:
        properties["INFERENCE_PRECISION_HINT"] = precision
    exported = Path(ov_dir) / "export.json"  # written by ov_export.py: its weight format
    weights = json.loads(exported.read_text())["weights"] if exported.exists() else "unknown"
    structured = (Path(ov_dir) / "openvino_detokenizer.xml").exists()
    return OVModel(
        f"openvino-{weights}",
        slots,
        max_len,
        config["vocab_size"],
        str(ov_dir),
        scheduler,
        properties,
        structured,
    )


def _unsupported(name: str, why: str) -> APIError:
    return APIError(
        400,
        "unsupported_parameter",
        f"{name} is not supported by the openvino "
        f"backend ({why}); serve with backend native for it",
        param=name,
    )


def generation_options(params: SamplingParams, max_new_tokens: int, eos: set[int]) -> dict:
    """OpenVINO's GenerationConfig fields for `params` (a dict: it crosses to the worker), or
    an APIError (400) naming what OpenVINO cannot honour."""
    import openvino_genai as og

    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(params, name):
            raise _unsupported(name, "its penalty moves negative logits up; leave it 0")
    if params.logit_bias:
        raise _unsupported("logit_bias", "it has no logit bias")
    if params.logprobs:
        raise _unsupported("top_logprobs", "it reports the sampled token's log-probability only")
    options: dict = {"max_new_tokens": max_new_tokens}
    if params.logprobs is not None:
        options["logprobs"] = 1
    if params.grammar is not None:
        options["grammar"] = params.grammar
    options |= {"stop_token_ids": set(eos)} if eos else {"ignore_eos": True}
    # OpenVINO holds these as float32: a valid 1e-300 would become 0 and be refused.
    options["repetition_penalty"] = max(params.repetition_penalty, TINY)
    if params.temperature >= MIN_TEMPERATURE:  # below it greedy, as in sampling.py
        options |= {
            "do_sample": True,
            "temperature": params.temperature,
            "top_p": max(params.top_p, TINY),
        }
        if params.top_k:
            options["top_k"] = params.top_k
        if params.min_p:
            options["min_p"] = params.min_p
        # OpenVINO's seed defaults to 0: unseeded requests would all draw the same tokens.
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        options["rng_seed"] = seed % 2**63  # the kwargs constructor takes a signed 64-bit int
    else:
        options["do_sample"] = False
    try:
        og.GenerationConfig(**{k: v for k, v in options.items() if k != "grammar"}).validate()
    except RuntimeError as exc:  # the schema should have refused it; still the client's 400
        raise APIError(
            400,
            "unsupported_parameter",
            f"the openvino backend refused the sampling parameters: {str(exc).splitlines()[-1]}",
        ) from None
    return options


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
        as its scheduler was configured at load (`load_pipeline`)."""
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
