"""Tool calling in the Hermes format (Qwen2.5, Hermes, many fine-tunes): the model writes

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

The prompt: a chat template that renders tools in this format (it mentions `<tool_call>`) gets
the tools and the history as Hugging Face passes them; any other template (SmolLM2's has no tool
support) gets them rendered here in the same format, so the model, the grammar and the parser
agree. The grammar (`tool_format`) makes `required` and named choices certain, and every call's
arguments valid against its tool's parameters. `ToolStream` splits the output into content and
calls as it streams.
"""

import json
import uuid
from dataclasses import dataclass, field

from llm_chat import grammar
from llm_chat.tool_schemas import NamedToolChoice, Tool

OPEN, CLOSE = "<tool_call>", "</tool_call>"
ANY_OBJECT = {"type": "object"}


def _call_text(name: str, arguments: str) -> str:
    return f'{OPEN}\n{{"name": {json.dumps(name)}, "arguments": {arguments}}}\n{CLOSE}'


def tools_prompt(tools: list[Tool]) -> str:
    specs = "\n".join(json.dumps(t.model_dump(exclude_none=True)) for t in tools)
    return (
        "You may call one or more functions to assist with the user query. The functions:\n"
        f"<tools>\n{specs}\n</tools>\n"
        "To call a function, answer with its name and arguments as JSON inside tags:\n"
        f'{OPEN}\n{{"name": <function-name>, "arguments": <arguments-object>}}\n{CLOSE}'
    )


def native_tools(tokenizer) -> bool:
    """The chat template renders tools and calls in the Hermes format itself."""
    return OPEN in (tokenizer.chat_template or "")


def chat_messages(messages, tools: list[Tool] | None, tokenizer) -> tuple[list[dict], list | None]:
    """Messages (and the `tools` argument) for `apply_chat_template`."""
    if native_tools(tokenizer):
        out = []
        for m in messages:
            item = {"role": m.role, "content": m.text()}
            if m.role == "assistant" and m.tool_calls:
                item["tool_calls"] = [
                    {
                        "type": "function",
                        "id": c.id,
                        "function": {
                            "name": c.function.name,
                            "arguments": _arguments(c.function.arguments),
                        },
                    }
                    for c in m.tool_calls
                ]
            if m.role == "tool":
                item["tool_call_id"] = m.tool_call_id
            out.append(item)
        return out, [t.model_dump(exclude_none=True) for t in tools] if tools else None
    out = [_rendered(m) for m in messages]
    if tools:
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + tools_prompt(tools)}
        else:
            out.insert(0, {"role": "system", "content": tools_prompt(tools)})
    return out, None


def _arguments(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _rendered(m) -> dict:
    role = "system" if m.role == "developer" else m.role
    if m.role == "tool":  # templates without tools know no tool role: Hermes puts it as user
        return {"role": "user", "content": f"<tool_response>\n{m.text()}\n</tool_response>"}
    text = m.text()
    if m.role == "assistant" and m.tool_calls:
        calls = [_call_text(c.function.name, c.function.arguments) for c in m.tool_calls]
        text = "\n".join(([text] if text else []) + calls)
    return {"role": role, "content": text}


def tool_format(tools: list[Tool], choice, parallel: bool) -> grammar.Format | None:
    """The grammar for `tool_choice`: None for none (free text); auto: text, or calls once
    the model opens one; required: calls only; a named function: exactly one call of it."""
    if choice == "none":
        return None
    if isinstance(choice, NamedToolChoice):
        tools = [t for t in tools if t.function.name == choice.function.name]
    tags = [
        grammar.tag(
            f'{OPEN}\n{{"name": {json.dumps(t.function.name)}, "arguments": ',
            grammar.json_schema(t.function.parameters or ANY_OBJECT),
            f"}}\n{CLOSE}",
        )
        for t in tools
    ]
    single = isinstance(choice, NamedToolChoice) or not parallel
    if choice == "auto":
        return grammar.triggered_tags([OPEN], tags, at_least_one=False, stop_after_first=single)
    return grammar.tags_with_separator(tags, "\n", stop_after_first=single)


@dataclass
class Call:
    name: str
    arguments: str  # JSON text
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    def openai(self, index: int | None = None) -> dict:
        call = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        return call if index is None else {"index": index, **call}


def parse_call(body: str) -> Call | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    return Call(value["name"], json.dumps(value.get("arguments", {})))


class ToolStream:
    """Output text in, content pieces and finished calls out. Text that may begin `<tool_call>`
    waits for the next piece; whitespace around calls is dropped; a call cut short (max_tokens)
    comes out as the text it was. Linear in the text: each piece is searched once."""

    def __init__(self) -> None:
        self.buffer, self.in_call, self.calls = "", False, []
        self.spaces = ""  # whitespace held until content follows it (dropped before a call)

    def push(self, text: str) -> tuple[str, list[Call]]:
        self.buffer += text
        content, calls = "", []
        while True:
            if self.in_call:
                end = self.buffer.find(CLOSE)
                if end < 0:
                    break
                body, self.buffer = self.buffer[:end], self.buffer[end + len(CLOSE) :]
                self.in_call = False
                call = parse_call(body.strip())
                if call is None:  # not a call after all: its text is content
                    content += self._content(OPEN + body + CLOSE)
                else:
                    calls.append(call)
                    self.spaces = ""
                continue
            start = self.buffer.find(OPEN)
            if start < 0:
                keep = _partial_open(self.buffer)
                content += self._content(self.buffer[: len(self.buffer) - keep])
                self.buffer = self.buffer[len(self.buffer) - keep :]
                break
            content += self._content(self.buffer[:start])
            self.spaces = ""
            self.buffer, self.in_call = self.buffer[start + len(OPEN) :], True
        self.calls += calls
        return content, calls

    def finish(self) -> str:
        """The text still held: an unfinished call's, or a partial `<tool_call`."""
        rest = (OPEN if self.in_call else "") + self.buffer
        self.buffer, self.in_call = "", False
        return self._content(rest) if rest.strip() else ""

    def _content(self, text: str) -> str:
        if not text.strip():
            self.spaces += text
            return ""
        text, self.spaces = self.spaces + text, ""
        stripped = text.rstrip()
        self.spaces = text[len(stripped) :]
        return stripped


def _partial_open(text: str) -> int:
    """The length of the longest end of `text` that begins `<tool_call>`."""
    for n in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-n:]):
            return n
    return 0
