"""From a request body to what the engine runs: the prompt's tokens, the output's grammar and
each choice's sampling parameters; and a 400 naming the field for what cannot run (a prompt
over the context, a schema the grammar compiler refuses, a token id outside the vocabulary,
combinations OpenAI also refuses). CPU work: the route runs it off the event loop."""

import functools
import json
import re
from dataclasses import dataclass

from llm_chat import grammar
from llm_chat.sampling import SamplingParams
from llm_chat.schema_ends import check_ends
from llm_chat.schemas import ChatRequest, CompletionRequest
from llm_chat.tool_schemas import (
    MAX_SCHEMA_CHARS,
    JSONObjectFormat,
    JSONSchemaFormat,
    check_enforced,
)
from llm_chat.tools import chat_messages, tool_format
from mlstack.serve import APIError


@dataclass
class Plan:
    prompt: list[int]
    choices: list[SamplingParams]
    tools: bool  # split tool calls out of the output
    logprobs: bool
    echo: str = ""


_SOURCE_PREFIX = re.compile(r"^\[[\d:]+\] \S+\.(?:cc|cpp|h):\d+: ")


def _bad(param: str, message: str, code: str = "invalid_parameter") -> APIError:
    return APIError(400, code, message, param=param)


def _checked(fmt: grammar.Format, param: str) -> grammar.Format:
    """`fmt` lowered to EBNF (grammar.lower), if the grammar compiler takes it: the schemas in
    it are JSON Schemas it supports."""
    import xgrammar as xgr

    if (size := len(json.dumps(fmt))) > MAX_SCHEMA_CHARS:
        raise _bad(
            param, f"the schema is {size} characters serialised; the limit is {MAX_SCHEMA_CHARS}"
        )
    try:
        lowered = grammar.lower(fmt)
        xgr.Grammar.from_structural_tag(grammar.structural_tag(lowered))
    except Exception as exc:  # xgrammar raises several types; all mean "not a schema it takes"
        # its messages start with "[time] /path/of/its/source.cc:line: ": the client gets the why
        why = _SOURCE_PREFIX.sub("", str(exc).strip())[:300]
        raise _bad(param, f"the schema cannot be compiled to a grammar: {why}") from None
    return lowered


def _enforced(schema: dict | None, param: str) -> None:
    try:
        check_enforced(schema)  # the bounded depth (tool_schemas.Schema) bounds the walk
        check_ends(schema)
    except ValueError as exc:
        raise _bad(param, f"{exc}; the output would not follow it") from None


def _chat_grammar(body: ChatRequest) -> tuple[grammar.Format | None, bool]:
    """(the grammar, whether tool calls are split out of the output)."""
    fmt = body.response_format
    choice = body.tool_choice or ("auto" if body.tools else "none")
    if choice != "none" and not body.tools:
        raise _bad("tool_choice", "tool_choice needs tools")
    if body.tools and choice != "none":
        if fmt is not None and not fmt.type == "text":
            raise _bad(
                "response_format",
                "response_format cannot be combined with tools unless tool_choice is none",
            )
        names = {t.function.name for t in body.tools}
        if len(names) < len(body.tools):
            raise _bad("tools", "two tools share a name")
        if not isinstance(choice, str) and choice.function.name not in names:
            raise _bad("tool_choice", f"no tool is named {choice.function.name!r}")
        for i, tool in enumerate(body.tools):
            _enforced(tool.function.parameters, f"tools[{i}].function.parameters")
        return _checked(tool_format(body.tools, choice, body.parallel_tool_calls), "tools"), True
    if isinstance(fmt, JSONObjectFormat):
        return _checked(grammar.JSON_OBJECT, "response_format"), False
    if isinstance(fmt, JSONSchemaFormat):
        schema = fmt.json_schema.schema_ or {"type": "object"}
        _enforced(schema, "response_format")
        return _checked(grammar.json_schema(schema), "response_format"), False
    return None, False


@functools.lru_cache(maxsize=4)  # one tokenizer per served model
def _control_tokens(tokenizer) -> re.Pattern | None:
    """The special tokens the chat template writes (ChatML's <|im_start|>, <|im_end|>) and the
    begin/end of text: text spelling them would become them. Other special tokens (SmolLM2's
    <filename>, <reponame>, ...) give the text no structure and stay allowed."""
    template = tokenizer.chat_template or ""
    specials = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    names = {name for name in specials | set(tokenizer.all_special_tokens) if name in template}
    names |= {tokenizer.bos_token, tokenizer.eos_token}
    names = {name for name in names if name}
    return re.compile("|".join(map(re.escape, sorted(names)))) if names else None


def _refuse_forged_roles(tokenizer, messages, tools, rendered, native) -> None:
    """Text that spells a control token (`<|im_end|>`, `<|im_start|>`) would become that token
    in the prompt: a user could close their turn and open a system one. Refused, not escaped:
    the template has no escape, and dropping it would change what was asked. Checked as sent
    (to name the field) and as the template gets it: content parts are joined and tool-call
    arguments JSON-decoded there, so `<|im_` + `end|>` or `\u003c|im_end|\u003e` spell it too."""
    if (pattern := _control_tokens(tokenizer)) is None:
        return
    extra = len(rendered) - len(messages)  # a system message the tools prompt was put into
    fields = [(f"messages[{i}]", m.model_dump_json()) for i, m in enumerate(messages)]
    fields += [(f"tools[{i}]", t.model_dump_json()) for i, t in enumerate(tools or [])]
    fields += [
        (f"messages[{j - extra}]" if j >= extra else "tools", json.dumps(m, ensure_ascii=False))
        for j, m in enumerate(rendered)
    ]
    fields += [("tools", json.dumps(native, ensure_ascii=False))] if native else []
    for param, text in fields:
        if found := pattern.search(text):
            raise _bad(
                param,
                f"{param} contains the control token {found.group()!r}, which the chat "
                "template reserves for its own structure",
            )


def chat_prompt(model, messages, tools, add_generation_prompt: bool = True) -> list[int]:
    """The token ids of a chat (and the tools it may call) through the model's template."""
    rendered, native = chat_messages(messages, tools, model.tokenizer)
    _refuse_forged_roles(model.tokenizer, messages, tools, rendered, native)
    return model.tokenizer.apply_chat_template(
        rendered, tools=native, add_generation_prompt=add_generation_prompt
    )


def _prompt(model, body: ChatRequest | CompletionRequest) -> list[int]:
    if isinstance(body, CompletionRequest):
        return model.tokenizer(body.prompt)["input_ids"]
    calling = body.tools and body.tool_choice != "none"
    return chat_prompt(model, body.messages, body.tools if calling else None)


def _output_limit(model, default: int, body, prompt: list[int]) -> int:
    """The output budget: max_tokens, capped to what the context leaves after the prompt (the
    answer then ends with finish_reason "length", as the schema cannot know the prompt's
    tokens); a 400 with the numbers when the prompt alone fills the context."""
    room = model.context - len(prompt)
    if room <= 0:
        raise APIError(
            400,
            "context_length_exceeded",
            f"the prompt has {len(prompt)} tokens; this model's context is {model.context} tokens",
            param="messages",
            limit=model.context,
        )
    return min(body.output_limit or default, room)


def plan(model, body: ChatRequest | CompletionRequest, default_max_tokens: int) -> Plan:
    if body.stream_options is not None and not body.stream:  # OpenAI refuses it too
        raise _bad("stream_options", "stream_options is only allowed when stream is true")
    if isinstance(body, ChatRequest):
        if body.top_logprobs and not body.logprobs:
            raise _bad("top_logprobs", "top_logprobs needs logprobs: true")
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
        fmt, tools = _chat_grammar(body)
        echo = ""
    else:
        if body.echo and body.logprobs is not None:
            raise _bad(
                "echo",
                "echo with logprobs would need the prompt's log-probabilities, "
                "which this server does not compute",
                "unsupported_parameter",
            )
        logprobs, fmt, tools = body.logprobs, None, False
        echo = body.prompt if body.echo else ""
    vocab = model.vocab_size
    if body.logit_bias and (bad := [k for k in body.logit_bias if int(k) >= vocab]):
        raise _bad("logit_bias", f"token id {bad[0]} is outside the vocabulary of {vocab}")
    prompt = _prompt(model, body)
    limit = _output_limit(model, default_max_tokens, body, prompt)
    base = body.sampling(limit, logprobs=logprobs, grammar=fmt)
    choices = [base]
    for i in range(1, body.n):  # choice i: seed + i, so a seeded request stays reproducible
        seed = None if body.seed is None else (body.seed + i) % 2**63
        choices.append(SamplingParams(**{**vars(base), "seed": seed}))
    return Plan(prompt, choices, tools, logprobs is not None, echo)
