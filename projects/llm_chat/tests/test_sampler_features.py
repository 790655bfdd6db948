"""The native sampler's request features: logit_bias, min_p, logprobs and grammar-constrained
decoding, alone (the Sampler on fixed logits) and through the engine on the tiny Llama."""

import asyncio
import json
import re

import pytest
import torch
from transformers import AutoTokenizer

from llm_chat.backends import NativeBackend
from llm_chat.engine import Delta, Engine
from llm_chat.grammar import json_schema
from llm_chat.sampling import Sampler, SamplingParams

VOCAB = 50
PROMPT = [10, 20, 30]
# Bounded by pattern, not maxLength: xgrammar 0.2.9 lets a maxLength string hold raw control
# characters, which strict JSON (json.loads) refuses.
WORD = {"type": "string", "pattern": "^[a-z]{1,8}$"}
OWNER = {
    "type": "object",
    "properties": {"city": WORD, "verified": {"type": "boolean"}},
    "required": ["city", "verified"],
    "additionalProperties": False,
}
SCHEMA = {
    "type": "object",
    "properties": {
        "name": WORD,
        "kind": {"enum": ["cat", "dog", "fox"]},
        "age": {"type": "integer", "minimum": 0, "maximum": 99},
        "score": {"type": "number", "minimum": 0, "maximum": 10},
        "tags": {"type": "array", "items": WORD, "maxItems": 3},
        "owner": OWNER,
    },
    "required": ["name", "kind", "age", "score", "tags", "owner"],
    "additionalProperties": False,
}
# The random tiny model, left free, writes whitespace between JSON tokens forever: xgrammar's
# own whitespace cap keeps its outputs short.
FORMAT = json_schema(SCHEMA) | {"max_whitespace_cnt": 1}


def conforms(value, schema: dict) -> bool:
    """`value` against the subset of JSON Schema that SCHEMA uses (jsonschema is not installed)."""
    if "enum" in schema:
        return value in schema["enum"]
    kind = schema["type"]
    if kind == "object":
        props = schema["properties"]
        return (
            isinstance(value, dict)
            and set(schema["required"]) <= value.keys() <= props.keys()
            and all(conforms(v, props[k]) for k, v in value.items())
        )
    if kind == "array":
        return (
            isinstance(value, list)
            and len(value) <= schema["maxItems"]
            and all(conforms(v, schema["items"]) for v in value)
        )
    if kind in ("integer", "number"):
        types = int if kind == "integer" else (int, float)
        return (
            isinstance(value, types)
            and not isinstance(value, bool)
            and schema["minimum"] <= value <= schema["maximum"]
        )
    if kind == "string":
        return isinstance(value, str) and re.fullmatch(schema["pattern"], value) is not None
    return isinstance(value, bool)


def logits_for(probs: list[float]) -> torch.Tensor:
    return torch.tensor(probs).log()


# --- the Sampler on fixed logits ---------------------------------------------------------------
def test_logit_bias_forces_and_forbids_a_token_even_greedy():
    logits = torch.randn(VOCAB, generator=torch.Generator().manual_seed(0))
    best, second = torch.topk(logits, 2).indices.tolist()
    low = int(logits.argmin())

    def greedy(bias: dict[int, float]) -> int:
        return Sampler(SamplingParams(temperature=0, logit_bias=bias), [], VOCAB)(logits)

    assert greedy({}) == best
    assert greedy({low: 100.0}) == low
    assert greedy({best: -100.0}) == second


def test_logit_bias_outside_the_vocabulary_is_refused():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        Sampler(SamplingParams(logit_bias={VOCAB: 1.0}), [], VOCAB)


def draws(params: SamplingParams, logits: torch.Tensor, n: int = 2000) -> torch.Tensor:
    sampler = Sampler(params, [], logits.numel())
    return torch.bincount(torch.tensor([sampler(logits) for _ in range(n)]), minlength=5) / n


def test_min_p_drops_the_tail_of_the_tempered_distribution():
    logits = logits_for([0.5, 0.3, 0.1, 0.06, 0.04])
    free = draws(SamplingParams(temperature=1, seed=1), logits)
    assert (free > 0).all()  # without min_p every token comes up
    # min_p 0.25 keeps p >= 0.125: the two likeliest, renormalised to 0.625 / 0.375.
    kept = draws(SamplingParams(temperature=1, min_p=0.25, seed=1), logits)
    assert kept[2:].sum() == 0
    assert kept[0] == pytest.approx(0.625, abs=0.04)
    # After temperature: at 2 the distribution flattens, every ratio to the top is >= 0.28.
    hot = draws(SamplingParams(temperature=2, min_p=0.25, seed=1), logits)
    assert (hot > 0).all()


def test_min_p_leaves_greedy_alone():
    logits = logits_for([0.2, 0.5, 0.3])
    assert Sampler(SamplingParams(temperature=0, min_p=1.0), [], 3)(logits) == 1


def test_logprobs_are_the_raw_log_softmax_with_sorted_alternatives():
    logits = torch.randn(VOCAB, generator=torch.Generator().manual_seed(1))
    raw = torch.log_softmax(logits, -1)
    # Bias, temperature and top-k change the choice, not what is reported.
    params = SamplingParams(temperature=0.7, top_k=3, logit_bias={5: 50.0}, logprobs=4, seed=0)
    sampler = Sampler(params, [], VOCAB)
    token = sampler(logits)
    (entry,) = sampler.take_logprobs()
    assert token == entry.token == 5
    assert entry.logprob == pytest.approx(float(raw[5]))
    assert [t for t, _ in entry.top] == torch.topk(raw, 4).indices.tolist()
    values = [v for _, v in entry.top]
    assert values == sorted(values, reverse=True) and len(values) == 4
    assert values[0] == pytest.approx(float(raw.max()))
    assert sampler.take_logprobs() == []  # taken once
    every = Sampler(SamplingParams(temperature=0, logprobs=VOCAB), [], VOCAB)
    every(logits)
    (entry,) = every.take_logprobs()
    assert sum(torch.tensor([v for _, v in entry.top]).exp()) == pytest.approx(1.0, abs=1e-5)
    none = Sampler(SamplingParams(temperature=0, logprobs=0), [], VOCAB)
    none(logits)
    assert none.take_logprobs()[0].top == []


def test_logprobs_off_cost_no_log_softmax(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("log_softmax ran with logprobs off")

    monkeypatch.setattr(torch, "log_softmax", refuse)
    sampler = Sampler(SamplingParams(temperature=1, seed=0), [], VOCAB)
    sampler(torch.randn(VOCAB))
    assert sampler.take_logprobs() == []


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    return AutoTokenizer.from_pretrained(tiny_llama)


def test_the_grammar_mask_comes_before_greedy_and_sampling(tokenizer):
    vocab = len(tokenizer)
    letter = tokenizer.convert_tokens_to_ids("a")
    logits = torch.zeros(vocab)
    logits[letter] = 20.0  # the model wants "a"; a JSON object starts with "{"
    raw = torch.log_softmax(logits, -1)
    for params in [SamplingParams(temperature=0, grammar=FORMAT, logprobs=1)] + [
        SamplingParams(temperature=1, top_p=0.9, seed=s, grammar=FORMAT, logprobs=1)
        for s in range(20)
    ]:
        sampler = Sampler(params, [], vocab, tokenizer=tokenizer)
        token = sampler(logits)
        assert tokenizer.decode([token]).strip() in ("", "{"), params
        (entry,) = sampler.take_logprobs()
        # Raw: the logprob the model gave the allowed token, and "a" still reported as its top.
        assert entry.logprob == pytest.approx(float(raw[token]))
        assert entry.top[0][0] == letter


# --- through the engine -------------------------------------------------------------------------
@pytest.fixture
def make_engine(tiny_llama, tokenizer):
    engines = []

    def make(eos: set[int] | None = None) -> Engine:
        backend = NativeBackend(tiny_llama, slots=4, max_len=512, threads=1)
        eos = {tokenizer.eos_token_id} if eos is None else eos  # as the service sets it
        engines.append(Engine(backend, tokenizer, eos=eos, max_queue=8))
        return engines[-1]

    yield make
    for engine in engines:
        engine.stop()


def run(engine: Engine, params: SamplingParams, prompt: list[int] = PROMPT) -> list[Delta]:
    async def go():
        return [d async for d in engine.stream(prompt, params)]

    return asyncio.run(asyncio.wait_for(go(), timeout=60))


def entries(deltas: list[Delta]) -> list[int]:
    return [e.token for d in deltas for e in d.logprobs]


def text(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas)


@pytest.mark.parametrize(("temperature", "seed"), [(0, None), (1.0, 1), (1.0, 2), (1.0, 3)])
def test_a_json_schema_output_parses_and_conforms(make_engine, tokenizer, temperature, seed):
    engine = make_engine()
    params = SamplingParams(max_tokens=300, temperature=temperature, seed=seed, logprobs=1)
    free = text(run(engine, params))
    with pytest.raises(ValueError):  # the control: the model alone writes no JSON
        json.loads(free)
    params.grammar = FORMAT
    deltas = run(engine, params)
    out = json.loads(text(deltas))
    assert conforms(out, SCHEMA), out
    assert not conforms(out | {"kind": "cow"}, SCHEMA)  # the check itself bites
    # The grammar ended it with the end-of-sequence token, which is not reported.
    assert deltas[-1].finish_reason == "stop"
    tokens = entries(deltas)
    assert len(tokens) == deltas[-1].tokens and tokenizer.eos_token_id not in tokens
    assert tokenizer.decode(tokens, skip_special_tokens=True) == text(deltas)


def test_a_grammar_ends_the_output_where_the_engine_ignores_end_of_sequence(make_engine, tokenizer):
    engine = make_engine(eos=set())  # as the benchmarks run: only the grammar can stop it
    deltas = run(engine, SamplingParams(max_tokens=300, temperature=0, grammar=FORMAT, logprobs=0))
    assert deltas[-1].finish_reason == "stop"
    assert conforms(json.loads(text(deltas)), SCHEMA)
    assert len(entries(deltas)) == deltas[-1].tokens
    assert tokenizer.eos_token_id not in entries(deltas)


def test_an_invalid_grammar_fails_only_its_own_request(make_engine):
    engine = make_engine()
    bad = [
        SamplingParams(grammar=json_schema({"type": "nonsense"})),
        SamplingParams(grammar={"type": "no-such-format"}),
        SamplingParams(logit_bias={10**6: 1.0}),
    ]

    async def go():
        good = engine.stream(PROMPT, SamplingParams(max_tokens=40, temperature=0))
        first = await anext(good)  # running in the batch before the bad ones arrive

        async def one(params):
            return [d async for d in engine.stream(PROMPT, params)]

        failed = await asyncio.gather(*[one(p) for p in bad])
        return [first] + [d async for d in good], failed

    done, failed = asyncio.run(asyncio.wait_for(go(), timeout=60))
    assert done[-1].finish_reason == "length" and done[-1].tokens == 40
    for deltas in failed:
        assert [(d.finish_reason, d.tokens) for d in deltas] == [("error", 0)]
    assert engine.load() == (0, 0)


def test_one_logprob_entry_per_output_token(make_engine, tokenizer):
    engine = make_engine()
    deltas = run(engine, SamplingParams(max_tokens=30, temperature=0, logprobs=3))
    got = [e for d in deltas for e in d.logprobs]
    assert len(got) == deltas[-1].tokens == 30
    for entry in got:  # greedy, nothing else applied: the choice is the raw top
        assert len(entry.top) == 3 and entry.top[0][0] == entry.token
        assert entry.logprob == pytest.approx(entry.top[0][1])
        assert [v for _, v in entry.top] == sorted((v for _, v in entry.top), reverse=True)
    assert tokenizer.decode(entries(deltas), skip_special_tokens=True) == text(deltas)
    off = run(engine, SamplingParams(max_tokens=30, temperature=0))
    assert entries(off) == [] and text(off) == text(deltas)


def test_logprobs_all_arrive_when_a_stop_string_ends_the_output(make_engine, tokenizer):
    engine = make_engine()
    free = run(engine, SamplingParams(max_tokens=30, temperature=0, logprobs=0))
    tokens, full = entries(free), text(free)
    pieces = [tokenizer.decode([t]) for t in tokens]
    # A stop string across two tokens: the first one's text is held back until the second.
    whole = [len(p) > 1 and "\ufffd" not in p for p in pieces]  # not part of a character
    at = next(i for i in range(len(pieces) - 1) if whole[i] and whole[i + 1])
    stop = pieces[at][-2:] + pieces[at + 1][:2]
    deltas = run(engine, SamplingParams(max_tokens=30, temperature=0, logprobs=0, stop=[stop]))
    assert deltas[-1].finish_reason == "stop" and text(deltas) == full[: full.find(stop)]
    got = entries(deltas)
    assert len(got) == deltas[-1].tokens and got == tokens[: len(got)]


def test_logprobs_of_held_back_text_come_with_the_finishing_delta(make_engine, tokenizer):
    engine = make_engine()
    free = run(engine, SamplingParams(max_tokens=12, temperature=0, logprobs=0))
    last = entries(free)[-1]
    # A stop string that never matches but starts with the last token's text: that text, and
    # so its entry, is held back until the output ends on its length.
    stop = tokenizer.decode([last]) + "\x00"
    deltas = run(engine, SamplingParams(max_tokens=12, temperature=0, logprobs=0, stop=[stop]))
    assert text(deltas) == text(free) and deltas[-1].finish_reason == "length"
    assert deltas[-1].text and deltas[-1].logprobs[-1].token == last
    assert entries(deltas) == entries(free)
