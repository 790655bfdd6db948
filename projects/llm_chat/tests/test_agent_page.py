"""The demo page's agent (`static/agent.js`), run by node: the same tool specs and calculator as
the Python agent's, its tools against the real search service and a dead port, and its loop
against the real server on the tiny Llama. Skipped where node is not installed."""

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

import llm_chat
from llm_chat.agent import SYSTEM
from llm_chat.agent_tools import TOOLS, CalculatorError, Toolbox, calculate, format_number
from mlstack.testing import free_port

from .conftest import AGENT_SEARCH_KEY
from .test_agent import check_real_run

AGENT_JS = Path(llm_chat.__file__).parent / "static" / "agent.js"


def node(script: str, **inputs):
    """Runs `script` in node with agent.js's exports as `agent` and `inputs` as `input`; returns
    what it passes to `done`."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    prelude = (
        f"const agent = require({json.dumps(str(AGENT_JS))}); const input = {json.dumps(inputs)};"
        " const done = (v) => process.stdout.write(JSON.stringify(v));"
    )
    code = (
        prelude
        + f"(async () => {{ {script} }})().catch((e) => {{ console.error(e); process.exit(1); }});"
    )
    r = subprocess.run(["node", "-e", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_page_tools_are_the_python_tools():
    assert node("done([agent.TOOLS, agent.SYSTEM]);") == [TOOLS, SYSTEM]


def test_page_calculator_agrees_with_the_python_one():
    expressions = [
        "2 + 2",
        "-2 ** 2",
        "2 ** 3 ** 2",
        "(3 + 4) * 2 ** 10",
        "7 // 2",
        "-7 // 2",
        "-7 % 3",
        "7 % -3",
        "1 / 3",
        "2 ** -2",
        ".5 + 1.5e1",
        "+5 - -5",
        "2.5 * 4",
        "9 ** 9 ** 9",
        "1 / 0",
        "5 // 0",
        "0 ** -1",
        "(-8) ** 0.5",
        "1e308 * 10",
        "x + 1",
        "2 ^ 10",
        "1,000",
        "(1).real",
        "lambda: 1",
        "'a' * 3",
        "True + 1",
        "1j",
        "1 < 2",
        "(1",
        "1)",
        "",
        "2 +",
        "1" * 201,
    ]

    def python(e):
        try:
            return format_number(calculate(e))
        except CalculatorError:
            return None

    page = node(
        "done(input.expressions.map((e) => { try { return agent.formatNumber(agent.calculate(e)); }"
        " catch (x) { if (x instanceof agent.CalculatorError) return null; throw x; } }));",
        expressions=expressions,
    )
    assert dict(zip(expressions, page, strict=True)) == {e: python(e) for e in expressions}


def test_page_tools_against_the_search_service_and_a_dead_port(agent_search_url):
    from semantic_search.corpus import wiki_summaries

    title = wiki_summaries()[0]["title"]
    options = {
        "searchUrl": agent_search_url,
        "searchKey": AGENT_SEARCH_KEY,
        "k": 3,
        "snippetChars": 60,
    }
    dead = {"searchUrl": f"http://127.0.0.1:{free_port()}"}
    found, unauthorized, down, broken = node(
        "done(await Promise.all([agent.runTool('search_wikipedia', input.query, input.options),"
        " agent.runTool('search_wikipedia', input.query, {searchUrl: input.options.searchUrl}),"
        " agent.runTool('search_wikipedia', input.query, input.dead),"
        " agent.runTool('calculator', '{not json', {})]));",
        query=json.dumps({"query": title}),
        options=options,
        dead=dead,
    )
    assert found == Toolbox(agent_search_url, AGENT_SEARCH_KEY, k=3, snippet_chars=60).run(
        "search_wikipedia", json.dumps({"query": title})
    )
    assert unauthorized.startswith("error: search failed with HTTP 401: missing or wrong API key")
    assert down.startswith(f"error: the search service at {dead['searchUrl']} is unreachable")
    assert broken.startswith("error: the arguments are not valid JSON")


def test_page_loop_against_the_real_server_and_search_service(agent_chat_url, agent_search_url):
    options = {
        "question": "What is 6 times 7?",
        "chatUrl": agent_chat_url + "/v1",
        "model": "tiny-llama",
        "maxSteps": 3,
        "firstToolChoice": "required",
        "maxTokens": 300,
        "system": None,
    }
    tools = {
        "searchUrl": agent_search_url,
        "searchKey": AGENT_SEARCH_KEY,
        "k": 1,
        "snippetChars": 80,
    }
    run = node(
        "const steps = [];"
        " const run = await agent.runAgent("
        "{...input.options, tools: input.tools, onStep: (s) => steps.push(s)});"
        " done({...run, steps});",
        options=options,
        tools=tools,
    )
    assert run["finish"] == "answer" and run["steps"][-1]["kind"] == "answer"
    check_real_run(run["messages"], run["modelCalls"], run["answer"])
    # The page the server serves loads this same file.
    assert '<script src="agent.js"></script>' in httpx.get(agent_chat_url + "/demo/").text
    assert httpx.get(agent_chat_url + "/demo/agent.js").text == AGENT_JS.read_text()
