"""OpenAI's chat and completion request bodies, with its ranges. Fields we do not implement
(logprobs, tools, n > 1) are refused by name rather than ignored; unknown fields are ignored, as
OpenAI clients send newer ones freely."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llm_chat.sampling import SamplingParams

MAX_STOP = 4


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[TextPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, description="Extension: keep the k likeliest tokens; 0 = off.")
    repetition_penalty: float = Field(1.0, gt=0, le=2, description="Extension, HF style.")
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1, description="One choice per request.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool | int | None = Field(None, description="Not supported: must be unset.")
    tools: list | None = Field(None, description="Not supported: must be unset.")

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str]:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences, got {len(stops)}")
        return stops

    @model_validator(mode="after")
    def _unsupported(self):
        for name in ("logprobs", "tools"):
            if getattr(self, name):
                raise ValueError(f"{name} is not supported by this server")
        return self

    def sampling(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(max_tokens=max_tokens, temperature=self.temperature,
                              top_p=self.top_p, top_k=self.top_k,
                              repetition_penalty=self.repetition_penalty,
                              presence_penalty=self.presence_penalty,
                              frequency_penalty=self.frequency_penalty, stop=self.stop or [],
                              seed=self.seed)  # fmt: skip


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str:
        if isinstance(value, list):
            if len(value) != 1:
                raise ValueError(f"one prompt per request, got {len(value)}")
            value = value[0]
        if not value:
            raise ValueError("prompt must not be empty")
        return value

    @property
    def output_limit(self) -> int | None:
        return self.max_tokens
