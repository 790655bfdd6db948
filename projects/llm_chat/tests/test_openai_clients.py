"""The default backend (OpenVINO, the tiny Llama exported) over HTTP, driven by the clients real
users bring: the `openai` SDK and LangChain. Structured output parses and validates for every
schema, tool calls come back whole (plain and streamed) and round-trip, logprobs, n and echo
are honoured; what the backend cannot do is a 400 naming it."""

import json

import httpx
import jsonschema_rs
import openai
import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

MODEL = "tiny-llama"
HELLO = [{"role": "user", "content": "Tell me about Paris."}]
CALC = {
    "type": "function",
    "function": {
        "name": "calc",
        "description": "Evaluate arithmetic.",
        "parameters": {
            "type": "object",
            "properties": {"expr": {"type": "string", "maxLength": 24}},
            "required": ["expr"],
            "additionalProperties": False,
        },
    },
}
# Nested objects, enums, arrays, numbers, booleans, null, unions: bounded, so even a random
# model ends (an unbounded number or string only ends at max_tokens).
SCHEMAS = {
    "nested": {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind", "scores", "address"],
        "properties": {
            "kind": {"enum": ["cat", "dog"]},
            "scores": {
                "type": "array",
                "maxItems": 3,
                "items": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "address": {
                "type": "object",
                "additionalProperties": False,
                "required": ["zip", "main"],
                "properties": {
                    "zip": {"type": "integer", "minimum": 0, "maximum": 99999},
                    "main": {"type": "boolean"},
                },
            },
        },
    },
    "array": {
        "type": "array",
        "minItems": 1,
        "maxItems": 4,
        "items": {"type": "integer", "minimum": -5, "maximum": 5},
    },
    "union": {
        "type": "object",
        "additionalProperties": False,
        "required": ["ok", "none", "pick"],
        "properties": {
            "ok": {"type": "boolean"},
            "none": {"type": "null"},
            "pick": {
                "anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"enum": ["a", "b"]}]
            },
        },
    },
    "string": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {"name": {"type": "string", "maxLength": 12}},
    },
}


@pytest.fixture(scope="module")
def client(agent_chat_url):
    return openai.OpenAI(base_url=agent_chat_url + "/v1", api_key="none", max_retries=0)


@pytest.fixture(scope="module")
def llm(agent_chat_url):
    return ChatOpenAI(
        model=MODEL,
        base_url=agent_chat_url + "/v1",
        api_key="none",
        max_tokens=160,
        temperature=0,
        max_retries=0,
    )


def chat(client, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=HELLO, **kwargs)


CASES = [(name, t) for name in SCHEMAS for t in (0.0, 1.0) if (name, t) != ("string", 1.0)]


# Not free strings sampled at temperature 1: xgrammar decodes UTF-8 leniently (it takes the
# overlong C0 B7 for "7" and F5..F7 as lead bytes), and a random model picks such byte tokens, so
# a string can hold bytes that decode to U+FFFD and break maxLength. A trained model does not
# write them (see README: structured output).
@pytest.mark.parametrize(("name", "temperature"), CASES)
def test_json_schema_output_parses_and_validates(client, name, temperature):
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": SCHEMAS[name], "strict": True},
    }
    for seed in range(3):
        choice = chat(
            client,
            response_format=response_format,
            max_tokens=200,
            seed=seed,
            temperature=temperature,
        ).choices[0]
        assert choice.finish_reason == "stop", choice.message.content
        value = json.loads(choice.message.content)
        assert jsonschema_rs.validator_for(SCHEMAS[name]).is_valid(value), value


def test_json_object_is_an_object(client):
    choice = chat(
        client, response_format={"type": "json_object"}, max_tokens=400, temperature=0
    ).choices[0]
    assert isinstance(json.loads(choice.message.content), dict)


def test_streamed_structured_output_is_the_same_json(client):
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "nested", "schema": SCHEMAS["nested"]},
    }
    whole = chat(client, response_format=response_format, max_tokens=200, temperature=0)
    pieces = chat(
        client, response_format=response_format, max_tokens=200, temperature=0, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
    assert text == whole.choices[0].message.content
    json.loads(text)


def test_langchain_with_structured_output_returns_the_model(llm):
    class Pet(BaseModel):
        kind: str = Field(json_schema_extra={"enum": ["cat", "dog"]})
        age: int = Field(ge=0, le=30)

    pet = llm.with_structured_output(Pet).invoke("Describe a pet.")
    assert isinstance(pet, Pet) and pet.kind in ("cat", "dog") and 0 <= pet.age <= 30


def valid_call(call) -> bool:
    args = json.loads(call.function.arguments)
    return (
        call.id.startswith("call_")
        and call.function.name == "calc"
        and (jsonschema_rs.validator_for(CALC["function"]["parameters"]).is_valid(args))
    )


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "calc"}}])
def test_forced_tool_calls_come_back_whole(client, choice):
    answer = chat(
        client,
        tools=[CALC],
        tool_choice=choice,
        max_tokens=120,
        temperature=0,
        parallel_tool_calls=False,
    )
    (first,) = answer.choices
    assert first.finish_reason == "tool_calls" and first.message.content is None
    (call,) = first.message.tool_calls
    assert valid_call(call)


def test_parallel_tool_calls_are_each_whole(client):
    # The random model keeps calling until max_tokens: every call it finished is returned, the
    # one cut short is not (its text stays content, as the finish reason says "length").
    first = chat(
        client, tools=[CALC], tool_choice="required", max_tokens=200, temperature=0
    ).choices[0]
    assert len(first.message.tool_calls) >= 2
    assert all(valid_call(call) for call in first.message.tool_calls)
    assert len({call.id for call in first.message.tool_calls}) == len(first.message.tool_calls)


def test_streamed_tool_calls_arrive_as_deltas(client):
    plain = (
        chat(
            client,
            tools=[CALC],
            tool_choice="required",
            max_tokens=120,
            temperature=0,
            parallel_tool_calls=False,
        )
        .choices[0]
        .message
    )
    chunks = list(
        chat(
            client,
            tools=[CALC],
            tool_choice="required",
            max_tokens=120,
            temperature=0,
            parallel_tool_calls=False,
            stream=True,
        )
    )
    calls = [
        c for chunk in chunks if chunk.choices for c in chunk.choices[0].delta.tool_calls or []
    ]
    assert [(c.index, c.function.name, c.function.arguments) for c in calls] == [
        (0, "calc", plain.tool_calls[0].function.arguments)
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_tool_round_trip_through_the_chat_template(client):
    first = (
        chat(
            client,
            tools=[CALC],
            tool_choice="required",
            max_tokens=120,
            temperature=0,
            parallel_tool_calls=False,
        )
        .choices[0]
        .message
    )
    call = first.tool_calls[0]
    messages = [
        *HELLO,
        first.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "42"},
    ]
    answer = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[CALC], tool_choice="none", max_tokens=8
    )
    assert answer.choices[0].message.content and not answer.choices[0].message.tool_calls
    assert answer.usage.prompt_tokens > 0


class Expression(BaseModel):
    expr: str = Field(max_length=24)  # bounded: the random model would not end a free string


def test_langchain_bind_tools_round_trip(llm):
    @tool(args_schema=Expression)
    def calc(expr: str) -> str:
        """Evaluate arithmetic."""
        return "42"

    bound = llm.bind_tools([calc], tool_choice="calc")
    question = HumanMessage("What is 6 * 7?")
    reply = bound.invoke([question])
    (call,) = reply.tool_calls
    assert call["name"] == "calc" and isinstance(call["args"].get("expr"), str)
    streamed = None
    for piece in bound.stream([question]):
        streamed = piece if streamed is None else streamed + piece
    assert streamed.tool_calls[0]["args"] == call["args"]
    final = llm.invoke([question, reply, ToolMessage("42", tool_call_id=call["id"])])
    assert isinstance(final.content, str)


def test_logprobs_cover_every_output_token(client):
    answer = chat(client, logprobs=True, max_tokens=8, temperature=0)
    entries = answer.choices[0].logprobs.content
    assert len(entries) == answer.usage.completion_tokens
    assert all(e.logprob <= 0 and e.top_logprobs == [] for e in entries)
    assert "".join(e.token for e in entries) == answer.choices[0].message.content


def test_a_schema_pattern_is_a_400_on_openvino_and_served_by_native(client, native):
    # OpenVINO's own xgrammar cannot parse the rule a pattern becomes: it killed the worker.
    schema = {
        "type": "object",
        "required": ["code"],
        "additionalProperties": False,
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}},
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "code", "schema": schema}}
    with pytest.raises(openai.BadRequestError) as err:
        chat(client, response_format=response_format)
    assert err.value.body["param"] == "response_format"
    assert chat(client, max_tokens=4).choices[0].message.content is not None  # the worker lives
    answer = chat(native, response_format=response_format, max_tokens=40, temperature=0)
    value = json.loads(answer.choices[0].message.content)
    assert jsonschema_rs.validator_for(schema).is_valid(value), value


# Recursion that can end is served (pydantic's form: the root a $ref into $defs); a $ref that
# cannot end is a 400 naming where (it was a 500 on native, empty output on OpenVINO).
TREE = {
    "$defs": {
        "Node": {
            "type": "object",
            "additionalProperties": False,
            "required": ["kind", "kids"],
            "properties": {
                "kind": {"enum": ["leaf", "node"]},
                "kids": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/Node"}},
            },
        }
    },
    "$ref": "#/$defs/Node",
}


@pytest.mark.parametrize("backend", ["client", "native"])
def test_recursion_that_ends_is_served_and_a_ref_that_cannot_is_a_400(request, backend):
    api = request.getfixturevalue(backend)
    tree = {"type": "json_schema", "json_schema": {"name": "tree", "schema": TREE}}
    choice = chat(api, response_format=tree, max_tokens=200, temperature=0).choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    assert jsonschema_rs.validator_for(TREE).is_valid(json.loads(choice.message.content))
    loop = {"anyOf": [{"$ref": "#"}]}
    with pytest.raises(openai.BadRequestError) as err:
        chat(
            api,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "loop", "schema": loop},
            },
        )
    assert err.value.body["param"] == "response_format"
    assert err.value.body["message"].startswith("`$ref` at /anyOf/0: `#` recurses")
    looping = {"type": "function", "function": {"name": "loop", "parameters": loop}}
    with pytest.raises(openai.BadRequestError) as err:
        chat(api, tools=[looping], tool_choice="required")
    assert err.value.body["param"] == "tools[0].function.parameters"


def test_top_logprobs_are_a_400_naming_them(client):
    with pytest.raises(openai.BadRequestError) as err:
        chat(client, logprobs=True, top_logprobs=2)
    assert err.value.body["param"] == "top_logprobs"


def test_n_choices_each_seeded(client):
    answer = chat(client, n=3, max_tokens=8, temperature=1.0, seed=7)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert 3 <= answer.usage.completion_tokens <= 3 * 8  # all choices', the prompt once
    again = chat(client, n=3, max_tokens=8, temperature=1.0, seed=7)
    assert [c.message.content for c in again.choices] == [c.message.content for c in answer.choices]
    streamed = chat(client, n=2, max_tokens=8, temperature=0, stream=True)
    indexes = {c.choices[0].index for c in streamed if c.choices}
    assert indexes == {0, 1}


def test_completions_echo_the_prompt(client):
    answer = client.completions.create(model=MODEL, prompt="Paris is", max_tokens=4, echo=True)
    assert answer.choices[0].text.startswith("Paris is")
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=MODEL, prompt="Paris is", echo=True, logprobs=1)
    assert err.value.body["param"] == "echo"


def test_fields_the_server_does_not_know_are_a_400_naming_them(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=MODEL, prompt="Paris is", suffix=" France.")
    assert err.value.body["param"] == "suffix"
    with pytest.raises(openai.BadRequestError) as err:
        chat(client, extra_body={"guided_json": {"type": "object"}})
    assert err.value.body["param"] == "guided_json"


# --- the native backend: the reference engine samples in Python, so it serves the rest too ----
@pytest.fixture(scope="module")
def native_url(tiny_llama):
    from llm_chat.testing import tiny_app
    from mlstack.testing import live_server

    with live_server(tiny_app(tiny_llama, backend="native", context_tokens=2048)) as url:
        yield url


@pytest.fixture(scope="module")
def native(native_url):
    return openai.OpenAI(base_url=native_url + "/v1", api_key="none", max_retries=0)


@pytest.mark.parametrize("name", SCHEMAS)
def test_native_json_schema_output_parses_and_validates(native, name):
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": SCHEMAS[name]},
    }
    choice = chat(native, response_format=response_format, max_tokens=200, temperature=0)
    value = json.loads(choice.choices[0].message.content)
    assert jsonschema_rs.validator_for(SCHEMAS[name]).is_valid(value), value


def test_native_tool_calls_and_top_logprobs_and_logit_bias(native, native_url):
    (call,) = (
        chat(
            native,
            tools=[CALC],
            tool_choice="required",
            parallel_tool_calls=False,
            max_tokens=120,
            temperature=0,
        )
        .choices[0]
        .message.tool_calls
    )
    assert valid_call(call)
    answer = chat(native, logprobs=True, top_logprobs=3, max_tokens=4, temperature=0)
    for entry in answer.choices[0].logprobs.content:
        tops = [t.logprob for t in entry.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True)
        assert entry.logprob == tops[0]  # greedy: the sampled token is the likeliest
    token = answer.choices[0].logprobs.content[0]
    forbidden = httpx.post(native_url + "/tokenize", json={"prompt": token.token}).json()
    banned = {str(t): -100 for t in forbidden["tokens"]}
    again = chat(native, logprobs=True, max_tokens=1, temperature=0, logit_bias=banned)
    assert again.choices[0].logprobs.content[0].token != token.token
