"""A `$ref` whose JSON pointer spells an array index another way (`00`, `²`) is a 400 at once,
and a large schema is checked off the event loop."""

import concurrent.futures
import itertools
import time

import httpx
import pytest

from llm_chat.schema_ends import check_ends
from llm_chat.testing import tiny_app
from mlstack.testing import live_server

KEY = "sk-test-refs"


@pytest.fixture(scope="module")
def url(tiny_llama, tmp_path_factory):
    app = tiny_app(tiny_llama, api_key=KEY, monitor_dir=tmp_path_factory.mktemp("monitor"))
    with live_server(app) as base:
        yield base


def many_spellings() -> dict:
    """The reviewer's 32 KB schema: 300 references to one 4,000-branch anyOf nine arrays deep,
    each spelling the indices differently (`0` or `00`)."""
    target: object = {"anyOf": [{}] * 4000}
    for _ in range(9):
        target = [target]
    spellings = itertools.islice(itertools.product(["0", "00"], repeat=9), 300)
    properties = {
        f"r{i}": {"$ref": "#/$defs/L/" + "/".join(parts)} for i, parts in enumerate(spellings)
    }
    return {"type": "object", "$defs": {"L": target}, "properties": properties}


def chat_with(schema: dict) -> dict:
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    return {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4,
        "response_format": fmt,
    }


def test_many_spellings_of_one_index_are_a_quick_400_and_the_loop_stays_free(url):
    # Each spelling rebuilt the 4,000 branches, inline on the event loop: 16 s before the 400,
    # and a /healthz sent meanwhile took 15.7 s.
    headers = {"Authorization": f"Bearer {KEY}"}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        started = time.perf_counter()
        sent = pool.submit(
            httpx.post,
            f"{url}/v1/chat/completions",
            json=chat_with(many_spellings()),
            headers=headers,
            timeout=60,
        )
        slowest = 0.0
        while True:
            asked = time.perf_counter()
            assert httpx.get(f"{url}/healthz", timeout=60).status_code == 200
            slowest = max(slowest, time.perf_counter() - asked)
            if sent.done():
                break
        response = sent.result()
    assert time.perf_counter() - started < 2.0
    assert slowest < 1.0
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "response_format"
    assert error["message"].startswith("`$ref` at /properties/r1: `#/$defs/L/0/0/0/0/0/0/0/0/00`")
    assert "indexes an array with `00`" in error["message"]


@pytest.mark.parametrize("index", ["00", "01", "²", "-1", "+1", " 1"])
def test_an_index_in_another_spelling_is_named(index):
    # "²".isdigit() is True and int("²") fails: the client got "invalid literal for int()".
    schema = {"$defs": {"L": [{}, {}, {}]}, "properties": {"a": {"$ref": f"#/$defs/L/{index}"}}}
    with pytest.raises(ValueError) as raised:
        check_ends(schema)
    assert str(raised.value).startswith(f"`$ref` at /properties/a: `#/$defs/L/{index}` indexes")
    assert f"with `{index}`; an index is 0 or ASCII digits" in str(raised.value)


def test_canonical_indices_resolve_and_many_references_to_one_target_are_quick():
    target: object = {"anyOf": [{"type": "integer"}] * 4000}
    for _ in range(9):
        target = [target]
    ref = {"$ref": "#/$defs/L/" + "/".join(["0"] * 9)}
    schema = {"$defs": {"L": target, "M": [{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}]}}
    schema["properties"] = {f"r{i}": ref for i in range(300)} | {"m": {"$ref": "#/$defs/M/10"}}
    started = time.perf_counter()
    check_ends(schema)
    assert time.perf_counter() - started < 2.0


def test_a_ref_to_false_says_it_matches_nothing_not_that_it_recurses():
    schema = {"$defs": {"no": False}, "properties": {"a": {"$ref": "#/$defs/no"}}}
    schema["required"] = ["a"]
    with pytest.raises(ValueError, match="`#/\\$defs/no` names the schema `false`") as raised:
        check_ends(schema)
    assert "recurses" not in str(raised.value)
