"""What bench_llm_features.py runs and sends: the engines (with an observer that records token
times) and one request's answer from them, a support chat of several turns (for the prefix cache),
a long summarising request (for chunked prefill) and a bounded JSON schema (for structured
output)."""

import contextlib
import dataclasses
import time

from grammar_masks import ADDRESS, SCHEMA, SKILL
from llm_engines import MODEL, MODELS, chat_ids

from llm_chat.engine import Observer
from llm_chat.sampling import SamplingParams

OV_DIR = MODELS / "openvino-int8"
CONTEXT = 2048  # room for the 1,500-token prompt and the chat's two turns


class Recorder(Observer):
    """From the engine thread: first tokens (when, seconds since submission), the gaps between
    a stream's tokens (when each ended, its length), prompt tokens found in the prefix cache."""

    def __init__(self) -> None:
        self.first: list[tuple[float, float]] = []
        self.gaps: list[tuple[float, float]] = []
        self.cached: list[int] = []  # per prefill; the native engine's only

    def prefix_cache(self, prompt: int, cached: int) -> None:
        self.cached.append(cached)

    def first_token(self, seconds: float) -> None:
        self.first.append((time.perf_counter(), seconds))

    def inter_token(self, seconds: float) -> None:
        self.gaps.append((time.perf_counter(), seconds))


@dataclasses.dataclass
class Setup:
    tokenizer: object
    eos: set[int]  # the service's: the tokenizer's and the generation config's
    threads: int


def ov_engine(
    s: Setup,
    *,
    slots: int,
    eos: set[int],
    max_len: int = CONTEXT,
    prefix_caching: bool = True,
    split_fuse: bool = True,
):
    from llm_chat.ov_config import load_pipeline
    from llm_chat.ov_engine import OVEngine

    model = load_pipeline(
        OV_DIR, slots=slots, max_len=max_len, threads=s.threads, prefix_caching=prefix_caching
    )
    if not split_fuse:  # scheduler options only: load_pipeline stays as the service uses it
        # Unsplit, OpenVINO fails the step (and its worker dies) on a prompt longer than
        # max_num_batched_tokens, so the whole context must fit in one step.
        scheduler = model.scheduler | {
            "dynamic_split_fuse": False,
            "max_num_batched_tokens": model.max_len,
        }
        model = dataclasses.replace(model, scheduler=scheduler)
    return OVEngine(model, s.tokenizer, eos=eos, max_queue=slots, observer=Recorder())


@contextlib.contextmanager
def turn(engine):
    """`engine`, or for a function that makes one, a new engine stopped after the turn. Native
    engines are made per turn: two alive at once each own an OpenMP pool, and libgomp then stops
    spin-waiting, which slows both (see llm_chat.engine.Engine). OpenVINO's run in worker
    processes and stay up."""
    if not callable(engine):
        yield engine
        return
    made = engine()
    try:
        yield made
    finally:
        made.stop()


def stop_kept(engines) -> None:
    """Stops the engines `turn` keeps up between turns; a function that makes one per turn
    (native) has nothing running."""
    for engine in engines:
        if not callable(engine):
            engine.stop()


async def answer(engine, ids: list[int], params: SamplingParams) -> str:
    return "".join([delta.text async for delta in engine.stream(ids, params)])


def native_engine(
    s: Setup,
    *,
    slots: int,
    eos: set[int],
    max_len: int = CONTEXT,
    prefix_caching: bool = True,
    chunk_tokens: int = 256,
):
    from llm_chat.backends import load_backend
    from llm_chat.engine import Engine

    def build():  # on the engine's thread (see Engine)
        backend = load_backend("native", MODEL, slots=slots, max_len=max_len, threads=s.threads)
        backend.reuses_prefix = prefix_caching  # read once, by the engine: off, it prefills all
        return backend

    return Engine(
        build, s.tokenizer, eos=eos, max_queue=slots, observer=Recorder(), chunk_tokens=chunk_tokens
    )


SHORT = {"type": "string", "maxLength": 24}
# bench_grammar's schema, bounded (strings, the array), without its zip `pattern`: the lowered
# grammar writes a pattern as a `Regex` rule, which the xgrammar inside OpenVINO GenAI 2026.4
# does not parse (its worker dies on the first step).
BOUNDED = {
    **SCHEMA,
    "properties": {
        **SCHEMA["properties"],
        "name": SHORT,
        "address": {
            **ADDRESS,
            "properties": {
                "street": SHORT,
                "city": SHORT,
                "zip": {"type": "string", "maxLength": 5},
            },
        },
        "skills": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {**SKILL, "properties": {**SKILL["properties"], "name": SHORT}},
        },
    },
}

SYSTEM = (
    "You are the support assistant of Northwind Outfitters, an online shop for hiking, camping "
    "and climbing gear based in Lyon. Answer in a friendly, concise tone and never invent "
    "products, prices or policies. Policies: orders over 80 euros ship free within the European "
    "Union; standard delivery takes 3 to 5 working days, express delivery 1 to 2 days for 12 "
    "euros. Unused items can be returned within 60 days for a full refund; worn items are "
    "exchanged only for a manufacturing defect. Every backpack and tent carries a 5-year "
    "warranty on seams, zips and buckles; sleeping bags carry 2 years. Repairs are free under "
    "warranty and take about two weeks; the customer pays the shipping to the workshop. Sizes "
    "follow the EU chart; when a customer is between two sizes, suggest the larger one for "
    "boots and the smaller one for harnesses. Never ask for a full card number; an order number "
    "and the e-mail address used for the order are enough to find an order. If a question is "
    "about safety on a route, recommend a local guide and the mountain weather service, and do "
    "not give route advice yourself. Escalate complaints about injuries to a human colleague."
)
HISTORY = [
    (
        "I bought the Ridge 40 backpack three weeks ago and one of the hip-belt buckles cracked on "
        "my second hike. Can I get it replaced?",
        "I'm sorry about the buckle! The Ridge 40 has a 5-year warranty on buckles, so the repair "
        "is free. Send it to our workshop with your order number; the repair takes about two weeks "
        "and you only pay the shipping to us.",
    ),
    (
        "Great. Do you also ship to Norway, and how long would a new order take to arrive?",
        "Norway is outside the European Union, so the free shipping threshold does not apply and "
        "customs fees may be charged on delivery. Standard delivery usually takes 5 to 8 working "
        "days there; express is not available.",
    ),
    (
        "What's the difference between the Summit and the Summit Lite tents?",
        "The Summit is a four-season tent with a double wall, two entrances and snow skirts; it "
        "weighs 2.9 kg. The Summit Lite is a three-season tent of 1.6 kg with one entrance and a "
        "single vestibule. Both sleep two and carry our 5-year warranty.",
    ),
    (
        "My order 48213 says delivered but I never got it. What should I do?",
        "Sorry to hear that! Please check with your neighbours and the building's mailroom first. "
        "If it hasn't turned up within two working days, reply with the e-mail address used for "
        "the order and we'll open an investigation with the carrier and send a replacement.",
    ),
]
QUESTIONS = (
    "Which of the two tents would you take for a solo trip in the Alps in late October?",
    "And which sleeping bag temperature rating should I pair with it for that trip?",
)
FILLER = [
    "The river delta survey counted {n} wading birds in the northern marshes this season.",
    "Ferry traffic between the two islands rose by {n} percent after the new pier opened.",
    "The city archive digitised {n} maps drawn before the great flood of the old quarter.",
    "A committee of {n} members reviewed the plans for the railway bridge over the gorge.",
    "Volunteers planted {n} oak saplings along the cycle path that follows the canal.",
    "The observatory logged {n} clear nights, most of them during the dry summer months.",
]


def conversation(rep: int, first_answer: str | None = None) -> list[dict]:
    # "Session N" makes each repetition's first cache block its own: no reuse across them.
    messages = [{"role": "system", "content": f"Session {rep}. {SYSTEM}"}]
    for user, assistant in HISTORY:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    messages.append({"role": "user", "content": QUESTIONS[0]})
    if first_answer is not None:
        messages += [
            {"role": "assistant", "content": first_answer},
            {"role": "user", "content": QUESTIONS[1]},
        ]
    return messages


def long_prompt(tokenizer, label: str, tokens: int) -> list[int]:
    """A summarising request of about `tokens` tokens whose first cache block is unique to
    `label` (the engines keep the prefix cache on, as served: no reuse of an earlier one)."""
    text = " ".join(f.format(n=7 * i + 3) for i in range(tokens // 10) for f in FILLER)
    head = f"Report {label}: summarise the following notes in three sentences.\n\n"
    body = tokenizer.encode(text, add_special_tokens=False)
    room = tokens - len(chat_ids(tokenizer, head))
    while len(ids := chat_ids(tokenizer, head + tokenizer.decode(body[:room]))) > tokens:
        room -= len(ids) - tokens  # decoding and encoding again may merge a token or two
    return ids
