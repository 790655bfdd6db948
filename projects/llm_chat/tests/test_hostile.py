"""Hostile requests over real HTTP: each is a clear 4xx JSON error naming the field (and the
limit where there is one), answered within a second, and the service keeps serving."""

import time

import httpx
import pytest

from llm_chat.testing import tiny_app
from mlstack.testing import live_server

KEY = "hostile-key"
MB = 1_000_000
USER = {"role": "user", "content": "Hello"}


@pytest.fixture(scope="module")
def http(tiny_llama, tmp_path_factory):
    app = tiny_app(tiny_llama, api_key=KEY, monitor_dir=tmp_path_factory.mktemp("monitor"))
    with live_server(app) as url:
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            yield client


def chat(**body) -> dict:
    return {"messages": [USER], "max_tokens": 4} | body


def tool(**function) -> dict:
    return {"type": "function", "function": {"name": "calc"} | function}


def schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


TOOL = tool(parameters={"type": "object", "properties": {"x": {"type": "number"}}})
WIDE = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(40_000)}}
DEEP: dict = {"type": "object"}
for _ in range(200):
    DEEP = {"type": "object", "properties": {"a": DEEP}, "required": ["a"]}

NEVER_ENDS = {
    "anyOf of itself": {"anyOf": [{"$ref": "#"}]},
    "a required self": {"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]},
    "a non-empty array of itself": {"type": "array", "items": {"$ref": "#"}, "minItems": 1},
    "an optional $defs loop": {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/n"}},
        "$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}, "minItems": 1}},
    },
}

COMBINED = {
    "anyOf beside type and required": {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "anyOf": [{"type": "integer"}],
    },
    "a nested oneOf beside maximum": {
        "type": "object",
        "properties": {"n": {"oneOf": [{"type": "integer"}], "maximum": 3}},
    },
}


CASES = {
    "megabyte content": (
        chat(messages=[{"role": "user", "content": "a" * MB}]),
        422,
        "messages.0.content",
        32768,
    ),
    "megabyte content part": (
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": "x" * MB}]}]),
        422,
        "messages.0.content.0.text",
        32768,
    ),
    "content parts over the total": (
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": "x" * 30_000}] * 2}]),
        422,
        "messages.0.content",
        None,
    ),
    "too many messages": (chat(messages=[USER] * 257), 422, "messages", 256),
    "messages over the total": (
        chat(messages=[{"role": "user", "content": "y" * 30_000}] * 5),
        422,
        "messages",
        None,
    ),
    "no messages": (chat(messages=[]), 422, "messages", None),
    "empty content": (
        chat(messages=[{"role": "user", "content": ""}]),
        422,
        "messages.0.content",
        None,
    ),
    "whitespace content": (
        chat(messages=[{"role": "user", "content": " \n\t "}]),
        422,
        "messages.0.content",
        None,
    ),
    "NUL in content": (
        chat(messages=[{"role": "user", "content": "hi\x00there"}]),
        422,
        "messages.0.content",
        None,
    ),
    "NUL in an answer": (
        chat(messages=[USER, {"role": "assistant", "content": "\x00"}, USER]),
        422,
        "messages.1.content",
        None,
    ),
    "unknown role": (chat(messages=[{"role": "robot", "content": "x"}]), 422, "messages.0", None),
    "tool result without its call id": (
        chat(messages=[{"role": "tool", "content": "x"}]),
        422,
        "messages.0.tool_call_id",
        None,
    ),
    "no content parts": (
        chat(messages=[{"role": "user", "content": []}]),
        422,
        "messages.0.content",
        None,
    ),
    "whitespace part": (
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": "   "}]}]),
        422,
        "messages.0.content.0.text",
        None,
    ),
    "huge max_tokens": (chat(max_tokens=10**12), 422, "max_tokens", 32768),
    "huge top_k": (chat(top_k=10**15), 422, "top_k", 1_000_000),
    "n of 9": (chat(n=9), 422, "n", 8),
    "top_logprobs over 20": (chat(logprobs=True, top_logprobs=21), 422, "top_logprobs", 20),
    "top_logprobs without logprobs": (chat(top_logprobs=2), 400, "top_logprobs", None),
    "an unknown field": (chat(suffix="x"), 400, "suffix", None),
    "301 logit biases": (
        chat(logit_bias={str(i): 1.0 for i in range(301)}),
        422,
        "logit_bias",
        300,
    ),
    "a logit bias key that is no token id": (
        chat(logit_bias={"the": 1.0}),
        422,
        "logit_bias.the",
        None,
    ),
    "a logit bias past the vocabulary": (chat(logit_bias={"999999": 1.0}), 400, "logit_bias", None),
    "a logit bias of 1000": (chat(logit_bias={"5": 1000.0}), 422, "logit_bias.5", 100),
    "65 tools": (chat(tools=[TOOL] * 65), 422, "tools", 64),
    "two tools of one name": (chat(tools=[TOOL] * 2), 400, "tools", None),
    "a megabyte tool description": (
        chat(tools=[tool(description="d" * MB)]),
        422,
        "tools.0.function.description",
        4096,
    ),
    "a megabyte tool schema": (
        chat(tools=[tool(parameters=WIDE)]),
        422,
        "tools.0.function.parameters",
        None,
    ),
    "a schema xgrammar refuses": (
        chat(response_format=schema_format({"type": "nonsense"})),
        400,
        "response_format",
        None,
    ),
    "a deeply nested schema": (
        chat(response_format=schema_format(DEEP)),
        422,
        "response_format.json_schema.schema",
        None,
    ),
    # Keywords the grammar compiler accepts and ignores: the output would break them.
    **{
        f"a schema with {name}": (
            chat(response_format=schema_format(schema)),
            400,
            "response_format",
            None,
        )
        for name, schema in [
            ("not", {"not": {"type": "string"}}),
            ("a nested if/then", {"properties": {"a": {"if": {}, "then": {"maxLength": 2}}}}),
            ("a remote $ref", {"$ref": "http://evil/x"}),
            ("two allOf", {"allOf": [{"type": "integer"}, {"maximum": 3}]}),
            ("an unknown format", {"type": "string", "format": "iri"}),
            ("unique items", {"type": "array", "uniqueItems": True}),
            ("dependent required", {"type": "object", "dependentRequired": {"a": ["b"]}}),
            (
                "a $ref with siblings",
                {"$defs": {"s": {"type": "string"}}, "$ref": "#/$defs/s", "maxLength": 2},
            ),
            ("a $ref outside $defs", {"$ref": "#/x", "x": {"not": {"const": "a"}}}),
            ("two oneOf", {"oneOf": [{"type": "integer"}, {"type": "number"}]}),
            ("required not in properties", {"type": "object", "properties": {}, "required": ["a"]}),
            ("an empty anyOf", {"anyOf": []}),
            ("a nested empty oneOf", {"type": "array", "items": {"oneOf": []}, "minItems": 1}),
            # beside anyOf, oneOf or allOf the grammar kept one and dropped the other (200)
            ("anyOf beside type and required", COMBINED["anyOf beside type and required"]),
            ("a nested oneOf beside maximum", COMBINED["a nested oneOf beside maximum"]),
            ("allOf beside type", {"allOf": [{"maximum": 3}], "type": "integer"}),
            ("anyOf beside const", {"anyOf": [{"type": "string"}], "const": 1}),
            ("anyOf beside allOf", {"anyOf": [{"type": "integer"}], "allOf": [{"maximum": 3}]}),
        ]
    },
    "a tool schema with anyOf beside properties": (
        chat(tools=[tool(parameters=COMBINED["anyOf beside type and required"])]),
        400,
        "tools[0].function.parameters",
        None,
    ),
    # A $ref that only recurses: its grammar rule admits no finite text, so the decoder had no
    # token to allow (a 500) or wrote `{"a": {"a": ...` until max_tokens.
    **{
        f"a $ref that never ends: {name}": (
            chat(response_format=schema_format(schema)),
            400,
            "response_format",
            None,
        )
        for name, schema in NEVER_ENDS.items()
    },
    "a tool schema whose $ref never ends": (
        chat(tools=[tool(parameters=NEVER_ENDS["a required self"])], tool_choice="required"),
        400,
        "tools[0].function.parameters",
        None,
    ),
    "a required name that is no string": (
        chat(response_format=schema_format({"type": "object", "required": [["a"]]})),
        400,
        "response_format",
        None,
    ),
    "a tool schema with contains": (
        chat(tools=[tool(parameters={"type": "array", "contains": {"const": 3}})]),
        400,
        "tools[0].function.parameters",
        None,
    ),
    "tool_choice without tools": (chat(tool_choice="required"), 400, "tool_choice", None),
    "tool_choice naming no tool": (
        chat(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "other"}}),
        400,
        "tool_choice",
        None,
    ),
    "json with tools": (
        chat(tools=[TOOL], response_format={"type": "json_object"}),
        400,
        "response_format",
        None,
    ),
    "stream_options without stream": (
        chat(stream_options={"include_usage": True}),
        400,
        "stream_options",
        None,
    ),
    "huge seed": (chat(seed=2**70), 422, "seed", None),
    "string number": (chat(temperature="0.5"), 422, "temperature", None),
    "five stops": (chat(stop=["a", "b", "c", "d", "e"]), 422, "stop", 4),
    "empty stop": (chat(stop=""), 422, "stop", None),
    "megabyte stop": (chat(stop="s" * MB), 422, "stop", 128),
    "megabyte model": (chat(model="m" * MB), 422, "model", 256),
}
COMPLETIONS = {
    "megabyte prompt": ({"prompt": "p" * MB}, 422, "prompt", 32768),
    "blank prompt": ({"prompt": "   "}, 422, "prompt", None),
    "two prompts": ({"prompt": ["a", "b"]}, 422, "prompt", 1),
    "no prompt": ({"prompt": []}, 422, "prompt", None),
    "NUL prompt": ({"prompt": "\x00"}, 422, "prompt", None),
}


def check(response: httpx.Response, started: float, status: int, param, limit) -> None:
    # refused before heavy work: milliseconds alone, 2 s of slack for a loaded CI worker (the
    # defects this guards against took 13 s and more)
    assert time.perf_counter() - started < 2.0
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert ".cc:" not in error["message"]  # no path of a library's C++ source
    assert error["message"] and error["param"] == param
    if limit is not None:
        assert error["limit"] == limit or str(limit) in error["message"]


@pytest.mark.parametrize("name", CASES)
def test_hostile_chat_requests_are_clear_4xx_within_a_second(http, name):
    body, status, param, limit = CASES[name]
    started = time.perf_counter()
    check(http.post("/v1/chat/completions", json=body), started, status, param, limit)


@pytest.mark.parametrize("name", COMPLETIONS)
def test_hostile_completion_requests_are_clear_4xx_within_a_second(http, name):
    body, status, param, limit = COMPLETIONS[name]
    started = time.perf_counter()
    check(http.post("/v1/completions", json=body), started, status, param, limit)


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("anyOf of itself", "`$ref` at /anyOf/0: `#`"),
        ("a required self", "`$ref` at /properties/a: `#`"),
        ("a non-empty array of itself", "`$ref` at /items: `#`"),
        ("an optional $defs loop", "`$ref` at /properties/a: `#/$defs/n`"),
    ],
)
def test_a_ref_that_never_ends_is_named_where_it_is(http, name, where):
    body = chat(response_format=schema_format(NEVER_ENDS[name]))
    error = http.post("/v1/chat/completions", json=body).json()["error"]
    assert error["message"].startswith(where + " recurses with no way to end"), error


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("anyOf beside type and required", "`anyOf` at the top level"),
        ("a nested oneOf beside maximum", "`oneOf` at /properties/n"),
    ],
)
def test_a_combinator_beside_constraints_is_named_where_it_is(http, name, where):
    body = chat(response_format=schema_format(COMBINED[name]))
    error = http.post("/v1/chat/completions", json=body).json()["error"]
    assert error["message"].startswith(where + ": it and the keywords beside it"), error


def test_an_empty_earlier_answer_can_be_replayed(http):
    # The model may end its answer at once; a client sends that empty answer back in the
    # conversation, so blank content is refused for what clients write, not for answers.
    messages = [USER, {"role": "assistant", "content": ""}, USER]
    assert http.post("/v1/chat/completions", json=chat(messages=messages)).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        b'{"messages": [{"role": "user", "content": "caf\xe9 \xff\xfe"}]}',
        b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"messages": [{"role": "user", "content": "hi", "x": '
        + b'{"a": ' * 50_000
        + b"1"
        + b"}" * 50_000
        + b"}]}",
        b'{"messages": [{"role": "user", "content": "hi"}]',
    ],
    ids=["invalid-utf8", "nested-lists", "nested-objects", "truncated"],
)
def test_unparsable_bodies_are_400(http, raw):
    started = time.perf_counter()
    response = http.post(
        "/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"}
    )
    check(response, started, 400, "body", None)


@pytest.mark.parametrize(
    ("content_type", "raw", "status", "param"),
    [
        ("text/plain", b'{"messages": []}', 415, "content-type"),
        ("application/xml", b"<messages/>", 415, "content-type"),
        ("application/json", b"", 400, "body"),
    ],
    ids=["text", "xml", "empty"],
)
def test_a_body_of_another_media_type_or_none_names_what_is_wrong(
    http, content_type, raw, status, param
):
    started = time.perf_counter()
    response = http.post(
        "/v1/chat/completions", content=raw, headers={"Content-Type": content_type}
    )
    check(response, started, status, param, None)


def test_a_body_over_two_megabytes_is_413_unread(http):
    started = time.perf_counter()
    response = http.post(
        "/v1/chat/completions", json=chat(messages=[{"role": "user", "content": "a" * (3 * MB)}])
    )
    check(response, started, 413, "body", 2 * 1024 * 1024)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/models"])
def test_every_compute_route_needs_a_key(http, path):
    body = {"prompt": "Hi"} if path == "/v1/completions" else chat()
    method = "GET" if path == "/v1/models" else "POST"
    kwargs = {} if method == "GET" else {"json": body}
    anonymous = httpx.request(method, str(http.base_url.join(path)), timeout=5, **kwargs)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"
    assert http.request(method, path, **kwargs).status_code == 200


def test_a_short_chat_answers_promptly_during_a_burst_of_the_largest_requests(http):
    # The issue's finding: a 60 KB message blocked the event loop for 13.6 s. Now the largest
    # valid requests (131k characters: screened and tokenized in the CPU pool, then refused
    # for the context) run while a short chat, screened inline, still answers at once.
    import concurrent.futures

    largest = chat(messages=[{"role": "user", "content": "x" * 32_768}] * 4)
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        burst = [pool.submit(http.post, "/v1/chat/completions", json=largest) for _ in range(12)]
        time.sleep(0.05)
        started = time.perf_counter()
        ok = http.post("/v1/chat/completions", json=chat(temperature=0))
        assert ok.status_code == 200 and time.perf_counter() - started < 1.0
        assert all(f.result().status_code == 400 for f in burst)


def test_the_largest_accepted_message_is_screened_and_measured_quickly(http):
    # 32k characters without a separator: within every schema limit, so the safety filter and
    # the tokenizer run (off the event loop), then the context check refuses it with numbers.
    started = time.perf_counter()
    response = http.post(
        "/v1/chat/completions", json=chat(messages=[{"role": "user", "content": "b" * 32_768}])
    )
    check(response, started, 400, "messages", 512)
    assert response.json()["error"]["code"] == "context_length_exceeded"
