"""bench_soak.py's request mix for the LLM chat service: chat, completions, JSON schema, tool
calls and logprobs, against deep schemas, unknown fields, out-of-range values and huge bodies."""

from soak_calls import MEGABYTE, NESTED, not_json


def llm_chat_calls(model: str) -> list:
    """`model`: the id the service lists first in /v1/models."""
    from mlstack.loadtest import Call

    chat = {"model": model, "max_tokens": 16, "temperature": 0}
    ask = [{"role": "user", "content": "Where is Paris?"}]
    schema = {
        "type": "object",
        "required": ["city"],
        "additionalProperties": False,
        "properties": {"city": {"type": "string", "maxLength": 8}},
    }
    tool = {"type": "function", "function": {"name": "find", "parameters": schema}}
    deep: dict = {"type": "object"}
    for _ in range(100):
        deep = {"type": "object", "properties": {"a": deep}}
    return [
        Call("valid: chat", "POST", "/v1/chat/completions", json={**chat, "messages": ask}),
        Call(
            "valid: completion",
            "POST",
            "/v1/completions",
            json={**chat, "prompt": "The capital of France"},
        ),
        Call(
            "valid: json schema",
            "POST",
            "/v1/chat/completions",
            json={
                **chat,
                "max_tokens": 40,
                "messages": ask,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "c", "schema": schema},
                },
            },
        ),
        Call(
            "valid: tool call",
            "POST",
            "/v1/chat/completions",
            json={
                **chat,
                "max_tokens": 40,
                "messages": ask,
                "tools": [tool],
                "tool_choice": "required",
                "parallel_tool_calls": False,
            },
        ),
        Call(
            "valid: logprobs, n=2",
            "POST",
            "/v1/chat/completions",
            json={**chat, "messages": ask, "n": 2, "logprobs": True, "top_logprobs": 2},
        ),
        Call("valid: tokenize", "POST", "/tokenize", json={"messages": ask, "tools": [tool]}),
        Call(
            "hostile: deep schema",
            "POST",
            "/v1/chat/completions",
            json={
                **chat,
                "messages": ask,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "d", "schema": deep},
                },
            },
        ),
        Call(
            "hostile: unknown field",
            "POST",
            "/v1/chat/completions",
            json={**chat, "messages": ask, "guided_json": schema},
        ),
        Call(
            "hostile: logit_bias past the vocabulary",
            "POST",
            "/v1/chat/completions",
            json={**chat, "messages": ask, "logit_bias": {"999999999": 5}},
        ),
        Call(
            "hostile: megabyte message",
            "POST",
            "/v1/chat/completions",
            json={**chat, "messages": [{"role": "user", "content": MEGABYTE}]},
        ),
        Call(
            "hostile: huge max_tokens",
            "POST",
            "/v1/chat/completions",
            json={
                **chat,
                "max_tokens": 10**12,
                "messages": [{"role": "user", "content": "hi"}],
            },
        ),
        Call(
            "hostile: no messages",
            "POST",
            "/v1/chat/completions",
            json={**chat, "messages": []},
        ),
        Call(
            "hostile: NUL",
            "POST",
            "/v1/chat/completions",
            json={**chat, "messages": [{"role": "user", "content": "\x00" * 1000}]},
        ),
        Call(
            "hostile: nested JSON",
            "POST",
            "/v1/chat/completions",
            content=NESTED,
            headers={"content-type": "application/json"},
        ),
        not_json("/v1/completions"),
    ]
