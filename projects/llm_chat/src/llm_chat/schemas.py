"""OpenAI's chat and completion request bodies, with its ranges and our size limits, all declared
in the schema so a client (and the OpenAPI document) sees what the server enforces. A field this
server does not implement is refused (400 `unsupported_parameter` naming it), never dropped: a
client that asks for `suffix` or `audio` learns it did not get it.

The size limits bound the CPU work a request can cause before the context check (tokenizing,
templating and the safety filters are linear in the text, ~1 s per MB on one core): a request
over them is a 422 naming the field and the limit, before any of that work starts."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from llm_chat.sampling import SamplingParams
from llm_chat.tool_schemas import (
    MAX_CALL_ID_CHARS,
    ResponseFormat,
    ToolCalls,
    ToolChoice,
    Tools,
)
from mlstack.fields import json_int

MAX_CONTENT_CHARS = 32_768  # one message, or one prompt: ~8k tokens of English, above any context
MAX_TOTAL_CHARS = 131_072  # all messages of a request together
MAX_MESSAGES = 256
MAX_PARTS = 64  # content parts of one message
MAX_STOP, MAX_STOP_CHARS = 4, 128
MAX_OUTPUT_TOKENS = 32_768  # schema bound; the model's context is checked per request (400)
MAX_MODEL_CHARS = 256
MAX_CHOICES = 8  # n: each choice takes a slot
MAX_TOP_LOGPROBS = 20  # OpenAI's chat limit (its completions allow 5)
MAX_LOGIT_BIAS = 300  # entries, as OpenAI
# Not blank (ASCII whitespace, spelled out: regex dialects disagree on what else `\s` covers,
# e.g. U+0085 or U+001C) and no NUL; linear, as the three parts cannot overlap.
NOT_BLANK = r"^[ \t\n\r\f\v]*[^ \t\n\r\f\v\x00][^\x00]*$"

# Python's `re` for `pattern`, so the server and schemathesis (Python) agree on what `\S` means;
# strict types: `"1"` is not an integer, `0` is not a boolean; no NaN or infinity.
_CONFIG = ConfigDict(strict=True, regex_engine="python-re", allow_inf_nan=False, extra="forbid")


OutputTokens = json_int(ge=1, le=MAX_OUTPUT_TOKENS)
TOKEN_ID = r"^[0-9]{1,9}$"  # JSON keys are strings
LogitBias = Annotated[
    dict[Annotated[str, Field(pattern=TOKEN_ID)], Annotated[float, Field(ge=-100, le=100)]],
    Field(max_length=MAX_LOGIT_BIAS),
    # pydantic writes patternProperties alone, which lets any other key through the schema.
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_LOGIT_BIAS,
            "additionalProperties": False,
            "patternProperties": {TOKEN_ID: {"type": "number", "minimum": -100, "maximum": 100}},
        }
    ),
]
Text = Annotated[str, Field(min_length=1, max_length=MAX_CONTENT_CHARS, pattern=NOT_BLANK)]
Stop = Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]
Stops = Annotated[list[Stop], Field(max_length=MAX_STOP)]


class TextPart(BaseModel):
    model_config = _CONFIG

    type: Literal["text"]
    text: Text


Parts = Annotated[list[TextPart], Field(min_length=1, max_length=MAX_PARTS)]
# An earlier answer may be empty (the model can end at once), and clients replay it as is.
NO_NUL = r"^[^\x00]*$"
AnswerText = Annotated[str, Field(max_length=MAX_CONTENT_CHARS, pattern=NO_NUL)]


class _Message(BaseModel):
    model_config = _CONFIG

    @field_validator("content", check_fields=False)
    @classmethod
    def _parts(cls, value: str | list[TextPart]) -> str | list[TextPart]:
        if isinstance(value, list) and (n := sum(len(p.text) for p in value)) > MAX_CONTENT_CHARS:
            raise ValueError(f"at most {MAX_CONTENT_CHARS} characters in all parts, got {n}")
        return value

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(p.text for p in self.content)


class InstructionMessage(_Message):
    role: Literal["system", "user", "developer"]
    content: Text | Parts = Field(
        description=f"Text, or text parts; at most {MAX_CONTENT_CHARS} characters in all, not "
        "blank, no NUL.",
    )


class AnswerMessage(_Message):
    role: Literal["assistant"]
    content: AnswerText | Parts | None = Field(
        None,
        description=f"An earlier answer: at most {MAX_CONTENT_CHARS} characters, no NUL; may be "
        "empty, or null when it made tool calls.",
    )
    tool_calls: ToolCalls | None = None


class ToolMessage(_Message):
    role: Literal["tool"]
    content: AnswerText | Parts = Field(description="A tool's result for the model to read.")
    tool_call_id: str = Field(min_length=1, max_length=MAX_CALL_ID_CHARS)


Message = Annotated[InstructionMessage | AnswerMessage | ToolMessage, Field(discriminator="role")]


class StreamOptions(BaseModel):
    model_config = _CONFIG

    include_usage: bool = False


class _Sampling(BaseModel):
    model_config = _CONFIG

    model: str | None = Field(None, max_length=MAX_MODEL_CHARS)
    max_tokens: OutputTokens | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: json_int(ge=0, le=1_000_000) = Field(
        0, description="Extension: keep the k likeliest tokens; 0 = off."
    )
    repetition_penalty: float = Field(1.0, gt=0, le=2, description="Extension, HF style.")
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    stop: Stop | Stops | None = None
    seed: json_int(ge=-(2**53), le=2**53) | None = None  # exact in a double, as JSON tools read it
    n: json_int(ge=1, le=MAX_CHOICES) = Field(
        1, description="Choices to generate; choice i samples with seed + i when a seed is set."
    )
    min_p: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Extension (vLLM's): drop tokens under "
        "min_p x the likeliest one's probability; 0 = off.",
    )
    logit_bias: LogitBias | None = Field(
        None, description="Token id (as a string) -> bias added to its logit."
    )
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str]:
        return [value] if isinstance(value, str) else list(value or [])

    def sampling(
        self, max_tokens: int, *, logprobs: int | None = None, grammar: dict | None = None
    ) -> SamplingParams:
        bias = {int(k): v for k, v in (self.logit_bias or {}).items()}
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            repetition_penalty=self.repetition_penalty,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            stop=self.stop or [],
            seed=self.seed,
            min_p=self.min_p,
            logit_bias=bias,
            logprobs=logprobs,
            grammar=grammar,
        )


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: OutputTokens | None = None
    logprobs: bool = Field(False, description="Each output token's log-probability.")
    top_logprobs: json_int(ge=0, le=MAX_TOP_LOGPROBS) | None = Field(
        None, description="With logprobs: the likeliest alternatives at each position."
    )
    response_format: ResponseFormat | None = None
    tools: Tools | None = None
    tool_choice: ToolChoice | None = Field(
        None,
        description="Default: auto with tools, none without; required and a named "
        "function are enforced by the grammar.",
    )
    parallel_tool_calls: bool = True

    def characters(self) -> int:
        return sum(len(m.text()) for m in self.messages)

    @field_validator("messages")
    @classmethod
    def _total(cls, messages: list[Message]) -> list[Message]:
        if (total := sum(len(m.text()) for m in messages)) > MAX_TOTAL_CHARS:
            raise ValueError(f"at most {MAX_TOTAL_CHARS} characters in all messages, got {total}")
        return messages

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: Text | Annotated[list[Text], Field(min_length=1, max_length=1)] = Field(
        description=f"One prompt (a list holds exactly one); at most {MAX_CONTENT_CHARS} "
        "characters and not blank."
    )
    logprobs: json_int(ge=0, le=5) | None = Field(
        None, description="The sampled token's log-probability and this many alternatives."
    )
    echo: bool = Field(False, description="The prompt before the completion (without logprobs).")

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str:
        return value[0] if isinstance(value, list) else value

    @property
    def output_limit(self) -> int | None:
        return self.max_tokens
