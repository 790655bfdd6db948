"""A masked object key equal to an earlier key of its object ends a JSON answer with
`content_filter`, streamed or whole: `{"555-123-4567": 1, "555-987-6543": 2}` was served as
`{"[phone]": 1, "[phone]": 2}` (finish stop), and a client's JSON parser kept one value."""

import asyncio
import json
import random

import pytest

from llm_chat import grammar
from llm_chat.engine_api import Delta
from llm_chat.responses import Answer, collect, sse
from llm_chat.safety import SafetyFilter
from llm_chat.safety_json import JSONOutputStream, screen_json

SAFETY = SafetyFilter(blocked_topics=[])
TWO_PHONES = '{"555-123-4567": 1, "555-987-6543": 2}'


@pytest.mark.parametrize(
    ("text", "collided"),
    [
        (TWO_PHONES, True),
        ('{"a": {"[phone]": 0, "555-123-4567": 1}}', True),  # a generated key like a placeholder
        ('{"a": "555-123-4567", "b": "555-987-6543"}', False),  # values, not keys
        ('[{"555-123-4567": 1}, {"555-987-6543": 2}]', False),  # keys of two objects
        ('{"x": {"555-123-4567": 1}, "555-987-6543": [2, {"y": "555-987-6544"}]}', False),
        ('{"k": 1, "k": 2}', False),  # a repeat the model wrote is no repeat masking made
    ],
)
def test_a_masked_key_repeating_one_of_its_object_is_told_streamed_or_whole(text, collided):
    whole, refused, _, repeat = screen_json(SAFETY, text)
    assert not refused and repeat == collided
    rng = random.Random(0)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, min(20, len(text) - 1))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        screen = JSONOutputStream(SAFETY)
        sent = [screen.push(p, final=i == len(pieces) - 1)[0] for i, p in enumerate(pieces)]
        assert "".join(sent) == whole and screen.collided == collided


async def _deltas(text: str):
    for i in range(0, len(text), 5):
        end = i + 5 >= len(text)
        yield (
            0,
            Delta(text=text[i : i + 5], tokens=i // 5 + 1, finish_reason="stop" if end else None),
        )


def test_the_route_ends_a_colliding_answer_with_content_filter_streamed_and_whole():
    # Keys the schema leaves free, so the masked answer still follows the grammar: only the
    # repeat tells the client that a value is lost.
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    fmt = grammar.lower(grammar.json_schema(schema))
    answer = Answer("chat", {"id": "x", "created": 0, "model": "m"}, 1, None, False)
    answer.structured = fmt

    async def inline(size, fn, *args):
        return fn(*args)

    body = asyncio.run(collect(answer, _deltas(TWO_PHONES), 1, SAFETY, inline))
    (choice,) = body["choices"]
    assert choice["message"]["content"] == '{"[phone]": 1, "[phone]": 2}'
    assert choice["finish_reason"] == "content_filter"

    async def events() -> list[dict]:
        return [
            json.loads(e[len("data: ") :])
            async for e in sse(answer, _deltas(TWO_PHONES), 1, SAFETY)
            if e.startswith("data: {")
        ]

    chunks = [c["choices"][0] for c in asyncio.run(events()) if c["choices"]]
    assert "".join(c["delta"].get("content") or "" for c in chunks) == choice["message"]["content"]
    assert [c["finish_reason"] for c in chunks if c["finish_reason"]] == ["content_filter"]
