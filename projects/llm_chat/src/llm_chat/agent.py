"""A small tool-calling agent over any OpenAI-compatible chat API: this server with its default
model, or, by URL, any bigger one (vLLM, llama.cpp, Ollama, a hosted API). Its tools are the
semantic search service (`search_wikipedia`) and a calculator (`agent_tools.py`).

The loop: call the model with the tools; run every tool call it makes and append the assistant
message (with its `tool_calls`) and one `tool` message per call (with its `tool_call_id`); call
again, until the model answers without tool calls or `max_steps` model calls are spent. The last
allowed call says `tool_choice: "none"`, so the run ends with an answer when it can."""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from llm_chat.agent_tools import TOOLS, Toolbox

SYSTEM = (
    "You are a helpful assistant. Use the search_wikipedia tool to look facts up and the "
    "calculator tool for arithmetic, then answer briefly from what the tools returned."
)

ToolChoice = Literal["auto", "required", "none"]


@dataclass
class Step:
    """One event of a run: a tool call with its result, or the final answer."""

    step: int  # which model call (1-based) produced it
    kind: Literal["tool", "answer"]
    name: str = ""
    arguments: str = ""
    result: str = ""
    content: str = ""
    finish_reason: str = ""  # the answer's: "length" when max_tokens cut it


@dataclass
class AgentRun:
    answer: str | None  # None when max_steps ran out while the model still called tools
    steps: list[Step]
    messages: list[dict[str, Any]]  # the whole conversation, as sent to the model
    model_calls: int
    finish: Literal["answer", "max_steps"]
    usage: dict[str, int] = field(default_factory=dict)


def _tool_choice(step: int, max_steps: int, first: ToolChoice) -> ToolChoice:
    """`first` for the first call (small models rarely pick a tool on their own, so a caller may
    say "required"), "none" for the last one allowed, "auto" in between."""
    if step == 0:
        return first
    return "none" if step == max_steps - 1 else "auto"


def run_agent(
    question: str,
    *,
    client: Any,
    model: str,
    toolbox: Toolbox,
    max_steps: int = 5,
    first_tool_choice: ToolChoice = "auto",
    system: str | None = SYSTEM,
    max_tokens: int = 256,
    temperature: float = 0.0,
    on_step: Callable[[Step], None] | None = None,
) -> AgentRun:
    """Runs the loop with `client` (an `openai.OpenAI`). Tool failures go back to the model as
    text; errors of the chat API itself (a 4xx/5xx, a connection failure) are raised."""
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    steps: list[Step] = []
    usage: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0}

    def record(step: Step) -> None:
        steps.append(step)
        if on_step is not None:
            on_step(step)

    for i in range(max_steps):
        response = client.chat.completions.create(
            model=model,
            messages=messages,
            tools=TOOLS,
            max_tokens=max_tokens,
            temperature=temperature,
            tool_choice=_tool_choice(i, max_steps, first_tool_choice),
        )
        if response.usage is not None:
            usage["prompt_tokens"] += response.usage.prompt_tokens
            usage["completion_tokens"] += response.usage.completion_tokens
        choice = response.choices[0]
        message = choice.message
        calls = message.tool_calls or []
        if not calls:
            answer = message.content or ""
            messages.append({"role": "assistant", "content": answer})
            record(Step(i + 1, "answer", content=answer, finish_reason=choice.finish_reason))
            return AgentRun(answer, steps, messages, i + 1, "answer", usage)
        # Replayed as the model wrote it: content is null beside tool calls, as OpenAI sends it.
        messages.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.function.name, "arguments": c.function.arguments},
                    }
                    for c in calls
                ],
            }
        )
        for c in calls:
            result = toolbox.run(c.function.name, c.function.arguments)
            messages.append({"role": "tool", "tool_call_id": c.id, "content": result})
            record(Step(i + 1, "tool", c.function.name, c.function.arguments, result))
    return AgentRun(None, steps, messages, max_steps, "max_steps", usage)


def default_model(client: Any) -> str:
    """The first model the server lists: this server serves exactly one."""
    import openai

    models = client.models.list().data
    if not models:
        raise openai.OpenAIError("the server lists no models; pass --model")
    return models[0].id


def _printable(text: str) -> str:
    # What a model or a search result wrote may hold terminal escapes: shown as U+FFFD instead.
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "\ufffd", text)


def describe(step: Step) -> str:
    """One step as terminal lines."""
    if step.kind == "answer":
        cut = " [cut at max_tokens]" if step.finish_reason == "length" else ""
        return f"[{step.step}] answer: {_printable(step.content)}{cut}"
    try:  # compact JSON when it parses; small models' broken arguments are shown as sent
        arguments = json.dumps(json.loads(step.arguments), ensure_ascii=False)
    except ValueError:
        arguments = step.arguments
    result = step.result.replace("\n", "\n      ")
    call = f"{_printable(step.name)}({_printable(arguments)})"
    return f"[{step.step}] {call}\n   -> {_printable(result)}"
