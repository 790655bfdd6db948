"""bench_grammar.py's per-token mask cost: the nested schema and the pretty-printed document that
follows it, and one library's fill, apply and accept times over that document's tokens (xgrammar,
and llguidance where it is importable)."""

import statistics
import time

import torch

TEXT = {"type": "string"}
ADDRESS = {
    "type": "object",
    "properties": {
        "street": TEXT,
        "city": TEXT,
        "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
    },
    "required": ["street", "city", "zip"],
}
SKILL = {
    "type": "object",
    "properties": {"name": TEXT, "level": {"type": "number", "minimum": 0, "maximum": 10}},
    "required": ["name", "level"],
}
SCHEMA = {
    "type": "object",
    "properties": {
        "name": TEXT,
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "role": {"enum": ["engineer", "manager", "designer", "researcher"]},
        "address": ADDRESS,
        "skills": {"type": "array", "items": SKILL, "minItems": 1},
        "active": {"type": "boolean"},
    },
    "required": ["name", "age", "role", "address", "skills", "active"],
}
DOCUMENT = {
    "name": "Ada Lovelace",
    "age": 36,
    "role": "researcher",
    "address": {"street": "12 St James's Square", "city": "London", "zip": "10001"},
    "skills": [
        {"name": "analysis", "level": 9.5},
        {"name": "mathematics", "level": 10},
        {"name": "poetry", "level": 6.25},
        {"name": "engine programming", "level": 8},
    ],
    "active": False,
}


def stats(seconds: list[float]) -> dict:
    ms = sorted(1000 * s for s in seconds)
    return {
        "mean_ms": round(statistics.fmean(ms), 4),
        "p50_ms": round(ms[len(ms) // 2], 4),
        "p99_ms": round(ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))], 4),
    }


def run_mask(matcher, fill, accept, tokens: list[int], vocab: int, apply) -> dict[str, list]:
    """One pass over `tokens` with a fresh matcher: each step's fill, apply, accept times. The
    next token must survive the mask: a check that the bitmask is read the way it was written."""
    from xgrammar import allocate_token_bitmask

    bitmask = allocate_token_bitmask(1, vocab)
    logits = torch.randn(1, vocab)
    times: dict[str, list] = {"fill": [], "apply": [], "accept": []}
    for token in tokens:
        row = logits.clone()
        t0 = time.perf_counter()
        fill(matcher, bitmask)
        t1 = time.perf_counter()
        apply(row, bitmask)
        t2 = time.perf_counter()
        if not torch.isfinite(row[0, token]):
            raise RuntimeError(f"the mask forbade token {token}, which the document needs")
        if not accept(matcher, token):
            raise RuntimeError(f"token {token} was refused")
        t3 = time.perf_counter()
        times["fill"].append(t1 - t0)
        times["apply"].append(t2 - t1)
        times["accept"].append(t3 - t2)
    return times


def summarise(passes: list[dict[str, list]], compile_s: float, matcher_s: float) -> dict:
    merged = {k: [t for p in passes for t in p[k]] for k in passes[0]}
    mask = [f + a for f, a in zip(merged["fill"], merged["apply"], strict=True)]
    return {
        "compile_ms": round(1000 * compile_s, 1),
        "new_matcher_ms": round(1000 * matcher_s, 3),
        "mask": stats(mask),
    } | {k: stats(v) for k, v in merged.items()}


def bench_xgrammar(tokenizer, vocab: int, tokens: list[int], passes: int) -> dict:
    import xgrammar as xgr

    from llm_chat.grammar import compile_format, json_schema

    t0 = time.perf_counter()  # the vocabulary's preprocessing and the schema's compilation
    compiled = compile_format(json_schema(SCHEMA), tokenizer, vocab)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    xgr.GrammarMatcher(compiled)
    matcher_s = time.perf_counter() - t0
    runs = [
        run_mask(
            xgr.GrammarMatcher(compiled),
            lambda m, b: m.fill_next_token_bitmask(b),
            lambda m, t: m.accept_token(t),
            tokens,
            vocab,
            xgr.apply_token_bitmask_inplace,
        )
        for _ in range(passes + 1)
    ]
    return summarise(runs[1:], compile_s, matcher_s)  # the first pass warms caches up


def byte_level(tokenizer):
    """The same vocabulary with a plain ByteLevel decoder. The GGUF conversion's decoder is a
    sequence (ByteFallback, Fuse, Replace, ByteLevel) that llguidance does not recognise as
    byte-level: it then reads "\u010a\u0120" as those characters, not as newline + space, and
    refuses the document's second token. xgrammar detects it as it is."""
    import copy

    from tokenizers import decoders
    from transformers import PreTrainedTokenizerFast

    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=tokenizer.eos_token)


def bench_llguidance(tokenizer, vocab: int, tokens: list[int], passes: int) -> dict | str:
    try:
        import llguidance
        import llguidance.hf
        import llguidance.torch
    except ImportError:
        return "not installed"
    import xgrammar as xgr

    t0 = time.perf_counter()
    lltok = llguidance.hf.from_tokenizer(byte_level(tokenizer), n_vocab=vocab)
    grammar = llguidance.LLMatcher.grammar_from_json_schema(SCHEMA)
    llguidance.LLMatcher(lltok, grammar)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    llguidance.LLMatcher(lltok, grammar)
    matcher_s = time.perf_counter() - t0
    runs = [
        run_mask(
            llguidance.LLMatcher(lltok, grammar),
            llguidance.torch.fill_next_token_bitmask,
            lambda m, t: m.consume_token(t),
            tokens,
            vocab,
            xgr.apply_token_bitmask_inplace,
        )
        for _ in range(passes + 1)
    ]
    note = "tokenizer given a plain ByteLevel decoder (see byte_level)"
    return {"version": llguidance.__version__, "note": note} | summarise(
        runs[1:], compile_s, matcher_s
    )
