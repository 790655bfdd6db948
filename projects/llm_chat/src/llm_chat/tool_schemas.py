"""OpenAI's structured-output and tool-calling request parts: `response_format`, `tools`,
`tool_choice`, the assistant's `tool_calls` and the `tool` role, with size limits declared in the
schema. A JSON schema a client sends is checked by compiling it (a 400 naming the field), as no
JSON Schema can say which schemas xgrammar accepts."""

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_TOOLS = 64
MAX_SCHEMA_CHARS = 32_768  # one JSON schema (parameters or response format), serialised
NAME = r"^[a-zA-Z0-9_-]{1,64}$"  # OpenAI's function and schema names
MAX_DESCRIPTION_CHARS = 4096
MAX_ARGUMENT_CHARS = 32_768
MAX_CALLS = 32  # tool calls in one assistant message
MAX_CALL_ID_CHARS = 128

_CONFIG = ConfigDict(strict=True, regex_engine="python-re", allow_inf_nan=False, extra="forbid")
Name = Annotated[str, Field(pattern=NAME)]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION_CHARS)]
MAX_SCHEMA_DEPTH = 32  # nested objects and lists: xgrammar's conversion is superlinear in it


def _bounded(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema small and shallow enough to compile in milliseconds (200 levels took 8.6 s)."""
    if (size := len(json.dumps(schema))) > MAX_SCHEMA_CHARS:
        raise ValueError(f"at most {MAX_SCHEMA_CHARS} characters serialised, got {size}")
    level, depth = [schema], 0
    while level:
        depth += 1
        if depth > MAX_SCHEMA_DEPTH:
            raise ValueError(f"nested at most {MAX_SCHEMA_DEPTH} levels deep")
        level = [
            v
            for item in level
            for v in (item.values() if isinstance(item, dict) else item)
            if isinstance(v, dict | list)
        ]
    return schema


Schema = Annotated[
    dict[str, Any],
    AfterValidator(_bounded),
    Field(
        description=f"A JSON schema (object): at most {MAX_SCHEMA_CHARS} characters "
        f"serialised, {MAX_SCHEMA_DEPTH} levels deep."
    ),
]


class JSONSchemaSpec(BaseModel):
    model_config = _CONFIG

    name: Name
    description: Description | None = None
    schema_: Schema = Field(default_factory=dict, alias="schema")
    strict: bool | None = Field(
        None, description="Always enforced: the output is decoded under the schema's grammar."
    )


class TextFormat(BaseModel):
    model_config = _CONFIG
    type: Literal["text"]


class JSONObjectFormat(BaseModel):
    model_config = _CONFIG
    type: Literal["json_object"]


class JSONSchemaFormat(BaseModel):
    model_config = _CONFIG
    type: Literal["json_schema"]
    json_schema: JSONSchemaSpec


ResponseFormat = Annotated[
    TextFormat | JSONObjectFormat | JSONSchemaFormat, Field(discriminator="type")
]


class Function(BaseModel):
    model_config = _CONFIG

    name: Name
    description: Description | None = None
    parameters: Schema | None = None
    strict: bool | None = Field(None, description="Always enforced, as for response_format.")


class Tool(BaseModel):
    model_config = _CONFIG
    type: Literal["function"]
    function: Function


class FunctionName(BaseModel):
    model_config = _CONFIG
    name: Name


class NamedToolChoice(BaseModel):
    model_config = _CONFIG
    type: Literal["function"]
    function: FunctionName


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice
Tools = Annotated[list[Tool], Field(min_length=1, max_length=MAX_TOOLS)]


class CalledFunction(BaseModel):
    model_config = _CONFIG

    name: Name
    arguments: str = Field(max_length=MAX_ARGUMENT_CHARS, description="JSON, as the model wrote.")


class ToolCall(BaseModel):
    model_config = _CONFIG

    id: str = Field(min_length=1, max_length=MAX_CALL_ID_CHARS)
    type: Literal["function"]
    function: CalledFunction


ToolCalls = Annotated[list[ToolCall], Field(max_length=MAX_CALLS)]
