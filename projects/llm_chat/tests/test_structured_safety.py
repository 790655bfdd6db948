"""The output safety filter on structured output, over HTTP with the `openai` SDK: PII is masked
inside JSON strings only, so a json_schema answer stays JSON and holds to its schema (numbers
are never rewritten); where a mask breaks the schema, or a blocked topic refuses, the answer
says so (`content_filter`, `refusal`); streamed and whole answers agree. The schemas are
consts and enums: the grammar leaves the random model one answer."""

import json
import random
from typing import Literal

import jsonschema_rs
import openai
import pytest
from pydantic import BaseModel

from llm_chat.safety import REFUSAL, SafetyFilter
from llm_chat.safety_json import JSONOutputStream, screen_json
from llm_chat.testing import tiny_app
from mlstack.testing import live_server

MODEL = "tiny-llama"
HELLO = [{"role": "user", "content": "Tell me about Paris."}]


@pytest.fixture(scope="module")
def client(tiny_llama):
    app = tiny_app(tiny_llama, context_tokens=1024, blocked_topics=["secret plan"])
    with live_server(app) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)


def answer(client, schema: dict, *, stream: bool = False) -> tuple[str | None, str | None, str]:
    """(content, refusal, finish_reason) of a json_schema answer, streamed or whole."""
    response_format = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    kwargs = {"response_format": response_format, "max_tokens": 200, "temperature": 0}
    if not stream:
        (choice,) = client.chat.completions.create(model=MODEL, messages=HELLO, **kwargs).choices
        return choice.message.content, choice.message.refusal, choice.finish_reason
    content, refusal, finish = "", None, ""
    for chunk in client.chat.completions.create(model=MODEL, messages=HELLO, stream=True, **kwargs):
        (choice,) = chunk.choices
        content += choice.delta.content or ""
        refusal = choice.delta.refusal or refusal
        finish = choice.finish_reason or finish
    return content, refusal, finish


def obj(**properties) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


NOTE = "call +1 555 010 9999, mail jane.doe@example.com"
MASKED = "call [phone], mail [email]"
SERVED = {  # schema -> the answer, as JSON
    "a card-long integer": ({"const": 4111111111111111}, 4111111111111111),
    "a phone-long integer in an enum": (obj(n={"enum": [5551234567, 1]}), {"n": 5551234567}),
    "a float with many digits": ({"const": 0.123456789}, 0.123456789),
    "PII in strings, numbers beside": (
        obj(note={"enum": [NOTE, MASKED]}, card={"const": 4111111111111111}),
        {"note": MASKED, "card": 4111111111111111},
    ),
}


@pytest.mark.parametrize("name", SERVED)
def test_pii_is_masked_in_json_strings_only_and_the_answer_holds_to_its_schema(client, name):
    # On the old code the whole text was masked: `[card]`, `{"n": [phone]}`: not JSON.
    schema, expected = SERVED[name]
    content, refusal, finish = answer(client, schema)
    assert json.loads(content) == expected and finish == "stop" and refusal is None
    assert jsonschema_rs.validator_for(schema).is_valid(json.loads(content))
    assert answer(client, schema, stream=True) == (content, None, "stop")


def test_a_mask_that_breaks_the_schema_ends_with_content_filter(client):
    # A string the schema pins down, masked, no longer holds to it: still JSON, and the answer
    # says why it does not follow the schema (the openai SDK's parse raises on it).
    schema = obj(contact={"const": "jane.doe@example.com"})
    expected = '{"contact": "[email]"}'
    assert answer(client, schema) == (expected, None, "content_filter")
    assert answer(client, schema, stream=True) == (expected, None, "content_filter")


class Payment(BaseModel):
    card: Literal[4111111111111111]
    phone: Literal[5551234567]


class Contact(BaseModel):
    email: Literal["jane.doe@example.com"]


def test_the_openai_sdk_parses_an_answer_with_pii_long_numbers(client):
    (choice,) = (
        client.beta.chat.completions.parse(
            model=MODEL, messages=HELLO, response_format=Payment, max_tokens=200, temperature=0
        )
    ).choices
    assert choice.message.parsed == Payment(card=4111111111111111, phone=5551234567)
    with pytest.raises(openai.ContentFilterFinishReasonError):
        client.beta.chat.completions.parse(
            model=MODEL,
            messages=HELLO,
            response_format=Contact,
            max_tokens=200,
            temperature=0,
        )


def test_a_blocked_topic_in_a_json_answer_is_a_refusal_not_content(client):
    # The refusal was the content ("I can't help with that topic."), which is no JSON.
    schema = obj(plan={"const": "the secret plan"})
    assert answer(client, schema) == (None, REFUSAL, "content_filter")
    content, refusal, finish = answer(client, schema, stream=True)
    assert (refusal, finish) == (REFUSAL, "content_filter")
    assert "secret" not in content and '{"plan": "'.startswith(content)


def test_a_json_answer_streamed_in_any_pieces_is_screened_as_the_whole():
    # PII split anywhere between pieces, past the 48 characters held, and written with escapes
    # (`\u0031` is a "1"), beside escaped quotes and backslashes that must stay as written.
    safety = SafetyFilter(blocked_topics=[])
    long = "x" * 60
    text = (
        r'{"n": 4111111111111111, "s": "' + NOTE + r" \"q\" \\ " + long + r' 4111 1111 1111 1111",'
        r' "k": ["\u0031\u0032\u00334567890", "caf\u00e9\n"]}'
    )
    whole, refused, masked, _ = screen_json(safety, text)
    assert not refused and masked
    assert whole == (
        r'{"n": 4111111111111111, "s": "' + MASKED + r" \"q\" \\ " + long + r' [card]",'
        r' "k": ["[phone]", "caf\u00e9\n"]}'
    )
    rng = random.Random(0)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 40)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        screen = JSONOutputStream(safety)
        sent = [screen.push(p, final=i == len(pieces) - 1)[0] for i, p in enumerate(pieces)]
        assert "".join(sent) == whole and screen.masked
