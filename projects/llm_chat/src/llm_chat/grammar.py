"""What the output must look like, as one engine-neutral value: a *format* in xgrammar's
structural-tag language (a JSON-able dict). Both engines constrain decoding with xgrammar, so
they agree on what a format allows: OpenVINO GenAI builds its `StructuredOutputConfig` from it
(`openvino_config`, in its worker process), the native sampler compiles it with the xgrammar
package (`compile_format`).

Formats used here:
- `{"type": "json_schema", "json_schema": {...}}`: `response_format` json_schema / json_object;
- `{"type": "triggered_tags", ...}`: tool calls (`tools.py`), free text until a trigger such as
  `<tool_call>` starts a call whose arguments follow the tool's JSON schema;
- `{"type": "tags_with_separator", ...}`: calls only (tool_choice required or named).

`lower` turns every JSON schema into an EBNF grammar of compact JSON (`{"a": 1, "b": [2]}`):
with free whitespace between tokens a small model can pad forever (the tiny test model wrote
100 tokens of blanks inside `{`), and the engines then only see EBNF.
"""

import json
import re
from functools import lru_cache
from typing import Any

Format = dict[str, Any]

# Any JSON object: what `response_format: {"type": "json_object"}` promises.
JSON_OBJECT: Format = {"type": "json_schema", "json_schema": {"type": "object"}}


def json_schema(schema: dict[str, Any]) -> Format:
    return {"type": "json_schema", "json_schema": schema}


def tag(begin: str, content: Format, end: str) -> Format:
    return {"type": "tag", "begin": begin, "content": content, "end": end}


def triggered_tags(
    triggers: list[str], tags: list[Format], *, at_least_one: bool, stop_after_first: bool
) -> Format:
    """Free text in which each trigger starts one of `tags` (whose `begin` starts with it);
    `at_least_one`: the output starts with a tag; `stop_after_first`: it ends after one."""
    return {
        "type": "triggered_tags",
        "triggers": triggers,
        "tags": tags,
        "at_least_one": at_least_one,
        "stop_after_first": stop_after_first,
    }


def json_ebnf(schema: dict[str, Any]) -> str:
    """Compact JSON valid against `schema`, as EBNF (xgrammar's conversion; additional
    properties only where the schema allows them, as OpenAI's strict mode)."""
    import xgrammar as xgr

    ebnf = str(xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False))
    # xgrammar 0.2.9 writes the characters of a length-limited string as a class that only
    # excludes quote, backslash, CR and LF, so raw control characters got through: JSON forbids
    # them (json.loads refused the output). Its other strings exclude them, as here.
    ebnf = ebnf.replace(_LOOSE_CHAR, _JSON_CHAR)
    # "at least n, no upper bound" as `{n,}`: the xgrammar inside OpenVINO GenAI 2026.4 does
    # not parse the `{n, -1}` this version writes (its worker died on the first JSON array).
    return re.sub(r"\{(\d+), -1\}", r"{\1,}", ebnf)


_LOOSE_CHAR = r"[^\"\\\r\n]"
_JSON_CHAR = r"[^\0-\x1f\"\\]"


def lower(fmt: Format) -> Format:
    """`fmt` with each JSON schema replaced by its EBNF grammar."""
    kind = fmt["type"]
    if kind == "json_schema":
        return {"type": "grammar", "grammar": json_ebnf(fmt["json_schema"])}
    if kind == "tag":
        return {**fmt, "content": lower(fmt["content"])}
    if kind in ("triggered_tags", "tags_with_separator"):
        return {**fmt, "tags": [lower(t) for t in fmt["tags"]]}
    return fmt


def tags_with_separator(tags: list[Format], separator: str, *, stop_after_first: bool) -> Format:
    """One or more of `tags` and nothing else, `separator` between two."""
    return {
        "type": "tags_with_separator",
        "tags": tags,
        "separator": separator,
        "at_least_one": True,
        "stop_after_first": stop_after_first,
    }


def structural_tag(fmt: Format) -> str:
    """The format as xgrammar's structural-tag JSON."""
    return json.dumps({"type": "structural_tag", "format": fmt})


# --- OpenVINO GenAI (runs in its worker process) ---------------------------------------------
def openvino_config(fmt: Format):
    """OpenVINO GenAI's `StructuredOutputConfig` for `fmt`."""
    import openvino_genai as og

    if fmt["type"] == "json_schema":
        return og.StructuredOutputConfig(json_schema=json.dumps(fmt["json_schema"]))
    if fmt["type"] == "grammar":
        return og.StructuredOutputConfig(grammar=fmt["grammar"])
    return og.StructuredOutputConfig(structural_tags_config=_openvino_part(fmt))


def _openvino_part(fmt: Format):
    import openvino_genai as og

    s = og.StructuredOutputConfig
    kind = fmt["type"]
    if kind == "json_schema":
        return s.JSONSchema(json.dumps(fmt["json_schema"]))
    if kind == "grammar":
        return s.EBNF(fmt["grammar"])
    if kind == "const_string":
        return s.ConstString(fmt["value"])
    if kind == "tag":
        return s.Tag(fmt["begin"], _openvino_part(fmt["content"]), fmt["end"])
    if kind == "triggered_tags":
        return s.TriggeredTags(
            fmt["triggers"],
            [_openvino_part(t) for t in fmt["tags"]],
            fmt["at_least_one"],
            fmt["stop_after_first"],
        )
    if kind == "tags_with_separator":
        return s.TagsWithSeparator(
            [_openvino_part(t) for t in fmt["tags"]],
            fmt["separator"],
            fmt["at_least_one"],
            fmt["stop_after_first"],
        )
    raise ValueError(f"no OpenVINO form for format type {kind!r}")


# --- xgrammar (the native sampler) -------------------------------------------------------------
@lru_cache(maxsize=4)
def _compiler(tokenizer, vocab_size: int):
    import xgrammar as xgr

    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
    return xgr.GrammarCompiler(info, cache_enabled=True)


def follows(fmt: Format, text: str) -> bool:
    """Whether `fmt` (lowered) admits the whole of `text`: for an answer the server changed after
    decoding under it (PII masked in a JSON string, safety_json.py). Compiled over no vocabulary,
    so a matcher takes strings only; milliseconds, as compiling the request's grammar."""
    import xgrammar as xgr

    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo([]), cache_enabled=False)
    grammar = xgr.Grammar.from_structural_tag(structural_tag(fmt))
    matcher = xgr.GrammarMatcher(
        compiler.compile_grammar(grammar), terminate_without_stop_token=True
    )
    return matcher.accept_string(text) and matcher.is_terminated()


def compile_format(fmt: Format, tokenizer, vocab_size: int):
    """xgrammar's compiled grammar for `fmt` over the model's vocabulary (`vocab_size`: the
    logits' width, which may exceed the tokenizer's)."""
    return _compiler(tokenizer, vocab_size).compile_structural_tag(structural_tag(fmt))
