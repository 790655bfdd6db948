"""The agent (`agent.py`, `agent_tools.py`): the calculator on arithmetic and hostile input, the
search tool against the real search service (tiny encoder, packaged Wikipedia) and a port with
nothing listening, and the loop: scripted (every branch, fast) and against the real server on
the tiny Llama with real tool calls. The demo page's agent: test_agent_page.py."""

import json
import time

import openai
import pytest
from openai.types.chat import ChatCompletion

from llm_chat.agent import SYSTEM, Step, describe, run_agent
from llm_chat.agent_tools import CalculatorError, Toolbox, calculate, format_number
from mlstack.testing import free_port

from .conftest import AGENT_SEARCH_KEY


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2 + 2", 4),
        ("(3 + 4) * 2 ** 10", 7168),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("1 / 4", 0.25),
        ("2 ** -2", 0.25),
        ("-(-3)", 3),
        ("+5 - -5", 10),
        ("1.5e3 * 2", 3000.0),
        ("2 ** 1000", 2**1000),
        (" 10 % 4 ", 2),
        ("(" * 99 + "1" + ")" * 99, 1),
        ("-" * 199 + "1", -1),
    ],
)
def test_calculator_evaluates_arithmetic(expression, value):
    assert calculate(expression) == value


def test_numbers_are_formatted_for_the_model():
    assert format_number(calculate("1 / 3")) == "0.333333333333"
    assert format_number(calculate("6 * 7")) == "42"


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("9 ** 9 ** 9", "exponent 387420489 is over the limit"),
        ("99 ** 999", "number too large"),
        ("(9 ** 1000) ** 1000", "number too large"),  # refused before it takes 0.3 s to build
        ("2 ** 1000 * 2 ** 1000 * 2 ** 1000 * 2 ** 1000 * 2 ** 1000", "number too large"),
        ("10.0 ** 400", "too large for a float"),
        ("10 ** 1000 / 3", "too large for a float"),
        ("1e308 * 10", "too large for a float"),
        ("1" * 201, "expression too long: 201 characters"),
        ("+".join(["1"] * 150), "expression too long"),
        ("x + 1", r"Name \(only numbers, no names\)"),
        ("__import__('os').system('true')", "Call"),
        ("(1).real", "Attribute"),
        ("().__class__.__bases__", "Attribute"),
        ("lambda: 1", "Lambda"),
        ("[1, 2]", "List"),
        ("'a' * 3", "unsupported constant 'a'"),
        ("True + 1", "unsupported constant True"),
        ("1j", "unsupported constant 1j"),
        ("2 ^ 10", "use \\*\\* for powers"),
        ("1,000", "no commas"),
        ("1 < 2", "Compare"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("(-8) ** 0.5", "not a real number"),
        ("2 +", "not an arithmetic expression"),
        ("", "not an arithmetic expression"),
    ],
)
def test_calculator_refuses_hostile_input_quickly(expression, error):
    t0 = time.perf_counter()
    with pytest.raises(CalculatorError, match=error):
        calculate(expression)
    assert time.perf_counter() - t0 < 1.0  # refused before any big work (timing: benchmarks)


def test_calculator_tool_errors_are_results_not_exceptions():
    tools = Toolbox()
    assert tools.run("calculator", '{"expression": "6 * 7"}') == "42"
    assert tools.run("calculator", '{"expression": "x"}').startswith("error: unsupported syntax")
    assert tools.run("calculator", '{"expression": 1 +').startswith(
        "error: the arguments are not valid JSON"
    )
    assert tools.run("calculator", "[1]") == "error: the arguments must be a JSON object"
    assert tools.run("calculator", "{}").startswith('error: calculator needs {"expression"')
    assert tools.run("calculator", "").startswith('error: calculator needs {"expression"')
    assert tools.run("rm_rf", "{}").startswith("error: unknown tool 'rm_rf'")


def test_search_tool_returns_titles_and_clipped_snippets(agent_search_url):
    from semantic_search.corpus import wiki_summaries

    title = wiki_summaries()[0]["title"]
    tools = Toolbox(agent_search_url, AGENT_SEARCH_KEY, k=3, snippet_chars=60)
    result = tools.run("search_wikipedia", json.dumps({"query": title}))
    lines = result.split("\n")
    assert len(lines) == 3 and [line[:3] for line in lines] == ["1. ", "2. ", "3. "]
    assert any(
        line.startswith(f"{i}. {title}: ") for i, line in enumerate(lines, 1)
    )  # BM25 finds it
    assert all(len(line.split(": ", 1)[1]) <= 60 for line in lines)


def test_search_tool_reports_service_errors_as_text(agent_search_url):
    query = json.dumps({"query": "Paris"})
    assert (
        Toolbox(agent_search_url)
        .run("search_wikipedia", query)
        .startswith("error: search failed with HTTP 401: missing or wrong API key")
    )
    blank = Toolbox(agent_search_url, AGENT_SEARCH_KEY).run("search_wikipedia", '{"query": "  "}')
    assert blank.startswith('error: search_wikipedia needs {"query"')


def test_search_tool_on_a_port_with_nothing_listening():
    tools = Toolbox(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    t0 = time.perf_counter()
    result = tools.run("search_wikipedia", '{"query": "Paris"}')
    assert result.startswith("error: the search service at http://127.0.0.1:")
    assert "unreachable" in result and time.perf_counter() - t0 < 5


class ScriptedClient:
    """Stands in for `openai.OpenAI`: answers `chat.completions.create` from a script of
    responses in OpenAI's shape and records every request."""

    def __init__(self, script: list[dict]) -> None:
        self.script, self.requests = list(script), []
        self.chat = self.completions = self

    def create(self, **request) -> ChatCompletion:
        self.requests.append(json.loads(json.dumps(request)))  # a copy: the loop appends later
        message = self.script.pop(0)
        return ChatCompletion.model_validate(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", **message},
                        "finish_reason": "tool_calls" if "tool_calls" in message else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )


def call(id_: str, name: str, arguments: str) -> dict:
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_loop_runs_tools_and_feeds_results_back():
    client = ScriptedClient(
        [
            {
                "content": None,
                "tool_calls": [
                    call("a", "calculator", '{"expression": "6 * 7"}'),
                    call("b", "calculator", "{not json"),
                ],
            },
            {"content": None, "tool_calls": [call("c", "search_wikipedia", '{"query": "x"}')]},
            {"content": "It is 42."},
        ]
    )
    dead = Toolbox(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    run = run_agent(
        "What is 6 times 7?",
        client=client,
        model="m",
        toolbox=dead,
        max_steps=5,
        first_tool_choice="required",
    )
    assert run.finish == "answer" and run.answer == "It is 42." and run.model_calls == 3
    roles = [m["role"] for m in run.messages]
    assert roles == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert run.messages[0]["content"] == SYSTEM
    tool_messages = [m for m in run.messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["a", "b", "c"]
    assert tool_messages[0]["content"] == "42"
    assert tool_messages[1]["content"].startswith("error: the arguments are not valid JSON")
    assert tool_messages[2]["content"].startswith("error: the search service")
    assert run.messages[2]["tool_calls"][1]["function"]["arguments"] == "{not json"
    # Each call sees the whole history so far, and the tools.
    assert [len(r["messages"]) for r in client.requests] == [2, 5, 7]
    assert {t["function"]["name"] for t in client.requests[0]["tools"]} == {
        "search_wikipedia",
        "calculator",
    }
    assert [r["tool_choice"] for r in client.requests] == ["required", "auto", "auto"]
    assert [s.kind for s in run.steps] == ["tool", "tool", "tool", "answer"]
    assert [s.step for s in run.steps] == [1, 1, 2, 3]
    assert run.usage == {"prompt_tokens": 30, "completion_tokens": 15}


def test_loop_stops_at_max_steps_and_the_last_call_may_not_use_tools():
    looping = {"content": None, "tool_calls": [call("a", "calculator", '{"expression": "1"}')]}
    client = ScriptedClient([looping, looping, looping])
    run = run_agent("q", client=client, model="m", toolbox=Toolbox(), max_steps=3, system=None)
    # The server ignored "none" here (a scripted one does): the run still ends, without answer.
    assert run.finish == "max_steps" and run.answer is None and run.model_calls == 3
    assert [r["tool_choice"] for r in client.requests] == ["auto", "auto", "none"]
    assert [m["role"] for m in run.messages][:1] == ["user"]


def test_steps_print_without_terminal_escapes():
    tool = Step(1, "tool", "calculator", '{"expression":\n"6*7"}', "42\x1b]0;owned\x07")
    assert describe(tool) == '[1] calculator({"expression": "6*7"})\n   -> 42\ufffd]0;owned\ufffd'
    answer = Step(2, "answer", content="a\x1b[2J\tb\nc", finish_reason="length")
    assert describe(answer) == "[2] answer: a\ufffd[2J\tb\nc [cut at max_tokens]"


def test_cli_reports_a_chat_api_that_is_down():
    from typer.testing import CliRunner

    from llm_chat.cli import app

    dead = f"http://127.0.0.1:{free_port()}/v1"
    r = CliRunner().invoke(app, ["agent", "What is 2 + 2?", "--base-url", dead, "--model", "m"])
    assert (
        r.exit_code == 1 and f"error: the chat API at {dead} failed: Connection error" in r.output
    )
    r = CliRunner().invoke(app, ["agent", "q", "--tool-choice", "sometimes"])
    assert r.exit_code == 2 and "auto or required" in r.output


def check_real_run(messages: list[dict], model_calls: int, answer: str | None) -> None:
    """A run of at most 3 calls whose first was forced to call tools: each assistant message
    with tool calls is followed by one tool message per call, with its id, in order; the last
    call (tool_choice none) answered."""
    assert 2 <= model_calls <= 3 and isinstance(answer, str)
    assert messages[0]["role"] == "user" and messages[-1] == {
        "role": "assistant",
        "content": answer,
    }
    assert messages[1]["role"] == "assistant" and messages[1]["tool_calls"]
    i, ids = 1, []
    while i < len(messages) - 1:
        calls = messages[i]["tool_calls"]
        for c in calls:
            assert c["function"]["name"] in {"search_wikipedia", "calculator"}
            json.loads(c["function"]["arguments"])  # the grammar keeps arguments valid JSON
        replies = messages[i + 1 : i + 1 + len(calls)]
        assert [m["role"] for m in replies] == ["tool"] * len(calls)
        assert [m["tool_call_id"] for m in replies] == [c["id"] for c in calls]
        assert all(m["content"] for m in replies)
        ids += [c["id"] for c in calls]
        i += 1 + len(calls)
    assert len(set(ids)) == len(ids)


def test_loop_against_the_real_server_and_search_service(agent_chat_url, agent_search_url):
    """The tiny Llama writes noise, so this checks the loop's plumbing end to end, not answers:
    the server's tool calls are run and their results go back in messages it accepts."""
    tools = Toolbox(agent_search_url, AGENT_SEARCH_KEY, k=1, snippet_chars=80)
    seen = []
    client = openai.OpenAI(base_url=agent_chat_url + "/v1", api_key="unused", max_retries=0)
    run = run_agent(
        "What is 6 times 7?",
        client=client,
        model="tiny-llama",
        toolbox=tools,
        max_steps=3,
        first_tool_choice="required",
        system=None,
        max_tokens=300,
        on_step=seen.append,
    )
    assert run.finish == "answer" and seen == run.steps
    check_real_run(run.messages, run.model_calls, run.answer)


def test_cli_against_the_real_server_and_search_service(agent_chat_url, agent_search_url):
    from typer.testing import CliRunner

    from llm_chat.cli import app

    args = [
        "agent",
        "Who painted the Mona Lisa?",
        "--base-url",
        agent_chat_url + "/v1",
        "--search-url",
        agent_search_url,
        "--search-api-key",
        AGENT_SEARCH_KEY,
        "--tool-choice",
        "required",
        "--max-steps",
        "2",
        "--max-tokens",
        "300",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("[1] ") and "\n   -> " in r.output and "\n[2] answer: " in r.output
