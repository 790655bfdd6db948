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


# Keywords xgrammar 0.2 accepts and then ignores (measured: a grammar from a schema with them
# accepted instances that break them). The output would not follow the schema the client sent,
# so they are refused, as is any other field the server would not honour.
IGNORED_KEYWORDS = {
    "not": "negation",
    "if": "conditionals",
    "then": "conditionals",
    "else": "conditionals",
    "contains": "contains",
    "minContains": "contains",
    "maxContains": "contains",
    "contentEncoding": "content encodings",
    "contentMediaType": "content encodings",
    "contentSchema": "content encodings",
    "$dynamicRef": "dynamic references",
    "$recursiveRef": "dynamic references",
    "uniqueItems": "unique items",
    "dependentRequired": "dependencies",
    "dependentSchemas": "dependencies",
    "dependencies": "dependencies",
}
_SEVERAL = {  # with more than one schema
    "allOf": "only its first schema is enforced; merge them",
    "oneOf": "enforced as anyOf (one or more, not exactly one); use anyOf",
}
# Keywords that only annotate: allowed beside a $ref (any other sibling is not enforced); and
# $defs, which only holds schemas for references (the walk checks them): pydantic writes a
# recursive model as {"$defs": {"Node": ...}, "$ref": "#/$defs/Node"}.
_ANNOTATIONS = {"$ref", "title", "description", "examples", "default", "$comment", "deprecated"}
_ANNOTATIONS |= {"$defs", "definitions"}
# Keywords that constrain a value (JSON Schema's validation and applicator keywords, less those
# refused anywhere). Beside anyOf, oneOf or allOf xgrammar 0.2 follows one of them and drops the
# rest (measured: {"type": "object", "required": ["a"], "anyOf": [{"type": "integer"}]} took
# `1`, refused {"a": 1}; a sibling const, enum or $ref wins over the anyOf instead; two of the
# three keep one). No pair was enforced together, so any constraint beside one is refused;
# annotations and unknown keywords constrain nothing and stay allowed: pydantic writes
# {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null, "title": "A"}.
_CONSTRAINTS = {"type", "enum", "const", "format", "$ref", "anyOf", "oneOf", "allOf"}
_CONSTRAINTS |= {"multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
_CONSTRAINTS |= {"minLength", "maxLength", "pattern", "minItems", "maxItems", "prefixItems"}
_CONSTRAINTS |= {"minProperties", "maxProperties", "required", "properties", "propertyNames"}
_CONSTRAINTS |= {"items", "additionalItems", "additionalProperties", "patternProperties"}
_CONSTRAINTS |= {"unevaluatedItems", "unevaluatedProperties"}
FORMATS = {  # the string formats its grammars enforce
    *("date", "time", "date-time", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"),
    *("uri", "uri-reference", "uri-template", "json-pointer", "relative-json-pointer"),
}
_SUBSCHEMA = ("items", "additionalProperties", "propertyNames", "additionalItems")
_SUBSCHEMA += ("unevaluatedProperties", "unevaluatedItems")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")


def check_enforced(schema: Any, where: str = "") -> None:
    """Raises ValueError for the first keyword the grammar would ignore, with its location (a
    400 from planning.py: the schema is valid, this server cannot hold output to it)."""
    if not isinstance(schema, dict):
        return
    at = where or "the top level"
    for key, what in IGNORED_KEYWORDS.items():
        if key in schema:
            raise ValueError(f"`{key}` at {at}: {what} are not enforced by the grammar decoder")
    ref = schema.get("$ref")
    if isinstance(ref, str):
        # the walk checks what $defs hold; a pointer elsewhere could reach an unchecked schema
        if ref != "#" and not ref.startswith(("#/$defs/", "#/definitions/")):
            raise ValueError(f"`$ref` at {at}: only #, #/$defs/... and #/definitions/... resolve")
        if siblings := sorted(set(schema) - _ANNOTATIONS):
            raise ValueError(f"`$ref` at {at}: keywords beside it ({siblings}) are not enforced")
    for key in ("anyOf", "oneOf"):  # (an empty allOf allows any value, as it should)
        # xgrammar makes an empty list the empty string: the output was "" or {"a": }
        if schema.get(key) == []:
            raise ValueError(f"`{key}` at {at}: an empty list, which no JSON value matches")
    for key, why in _SEVERAL.items():
        if isinstance(schema.get(key), list) and len(schema[key]) > 1:
            raise ValueError(f"`{key}` at {at}: {why}")
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema and (beside := sorted(_CONSTRAINTS.intersection(schema) - {key})):
            raise ValueError(
                f"`{key}` at {at}: it and the keywords beside it ({beside}) are not enforced "
                "together (the grammar follows only one); move them into each of its schemas"
            )
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    # a name that is no string (a list: unhashable) is missing too, not a TypeError and a 500
    if missing := [n for n in required if not (isinstance(n, str) and n in properties)]:
        raise ValueError(f"`required` at {at}: {missing} are not in `properties`")
    if isinstance(fmt := schema.get("format"), str) and fmt not in FORMATS:
        raise ValueError(f"`format: {fmt}` at {at}: enforced formats are {sorted(FORMATS)}")
    for sub, there in subschemas(schema, where):
        check_enforced(sub, there)


def subschemas(schema: dict[str, Any], where: str):
    """(schema, location) of each schema directly inside `schema`, in the keywords' order."""
    for key in _SUBSCHEMA:
        if key in schema:
            yield schema[key], f"{where}/{key}"
    for key in ("prefixItems", "anyOf", "oneOf", "allOf", "items"):
        if isinstance(schema.get(key), list):
            for i, sub in enumerate(schema[key]):
                yield sub, f"{where}/{key}/{i}"
    for key in _SUBSCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            for name, sub in schema[key].items():
                yield sub, f"{where}/{key}/{name}"


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
