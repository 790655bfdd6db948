"""How OpenVINO GenAI's continuous-batching pipeline is configured for `OVEngine` (ov_engine.py):
its scheduler once, at load (`load_pipeline`: paged KV cache sized for every slot's full
context, chunked prefill, prefix caching), and a GenerationConfig per request
(`generation_options`).

Sampling runs inside OpenVINO, structured output too (xgrammar, from the format in grammar.py;
it needs the export's OpenVINO detokenizer, whose vocabulary it reads). Refused with a 400, not
silently changed: presence and frequency penalties (OpenVINO moves a negative logit *up* by the
penalty, OpenAI always subtracts it), `logit_bias` (not offered) and top logprobs (OpenVINO
reports the sampled token's log-probability only): the native backend serves them.
"""

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlstack.serve import APIError

if TYPE_CHECKING:  # sampling.py imports torch; the settings import this module for its default
    from llm_chat.sampling import SamplingParams

BLOCK_TOKENS = 32  # the CPU plugin's KV cache block
MIN_TEMPERATURE = 1e-4  # as sampling.py: below it, greedy
TINY = 1e-30  # the smallest penalty and top_p passed on: float32 keeps it, and it acts as 0+
# The CPU plugin computes in bf16 where the CPU has AMX or AVX512-BF16; for a model this small
# the conversions cost more than they save: on this 2-core Sapphire Rapids, int8 weights decode
# 84 tokens/s at batch 1 in f32 against 55 in bf16, and 431 against 290 with 8 streams
# (benchmarks/bench_llm_chat.py, the openvino-int8 and openvino-int8-bf16 rows), at +0.6%
# perplexity against fp32 (llm_quality). Prefill is where bf16 wins: a 701-token prompt's first
# token took 382 ms in f32 against 237 ms in bf16 (bench_llm_features.py, this run and the one
# before), yet a 128-token answer to it still ends sooner in f32. bf16 stays a setting.
DEFAULT_PRECISION = "f32"


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
    precision: str = DEFAULT_PRECISION,
    chunk_tokens: int = 256,
    prefix_caching: bool = True,
) -> OVModel:
    """The KV cache holds `slots` full contexts, so an admitted request never waits for blocks
    (a request that can never fit would wait forever: OpenVINO does not refuse it).
    `precision`: the CPU plugin's inference precision (f32 or bf16; see DEFAULT_PRECISION)."""
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
    properties: dict = {"INFERENCE_PRECISION_HINT": precision}
    if threads:
        properties["INFERENCE_NUM_THREADS"] = threads
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


def generation_options(params: "SamplingParams", max_new_tokens: int, eos: set[int]) -> dict:
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
