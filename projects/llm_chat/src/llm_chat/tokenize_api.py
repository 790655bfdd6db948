"""`/tokenize` and `/detokenize`, as vLLM serves them: what a prompt (or a chat, through the
template and tools the chat route would use) costs in tokens, and the text of token ids. Clients
use them to budget a context before sending; the counts are the chat route's own."""

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from llm_chat.planning import chat_prompt
from llm_chat.schemas import MAX_CONTENT_CHARS, MAX_MESSAGES, MAX_MODEL_CHARS, Message, Text
from llm_chat.tool_schemas import Tools
from mlstack.fields import json_int
from mlstack.serve import APIError, Hub, error_responses, offload

MAX_TOKENS = 32_768
_CONFIG = ConfigDict(strict=True, regex_engine="python-re", allow_inf_nan=False, extra="forbid")

router = APIRouter(tags=["tokens"])


class TokenizeRequest(BaseModel):
    model_config = _CONFIG

    model: str | None = Field(None, max_length=MAX_MODEL_CHARS)
    prompt: Text | None = Field(None, description="Plain text (no chat template).")
    messages: Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)] | None = Field(
        None, description="A chat, rendered as /v1/chat/completions renders it."
    )
    tools: Tools | None = Field(None, description="With messages: tools the prompt describes.")
    add_generation_prompt: bool = True
    return_token_strs: bool = False


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(BaseModel):
    model_config = _CONFIG

    model: str | None = Field(None, max_length=MAX_MODEL_CHARS)
    tokens: Annotated[list[json_int(ge=0, le=2**31 - 1)], Field(max_length=MAX_TOKENS)]


class DetokenizeResponse(BaseModel):
    prompt: str


def _tokens(model, body: TokenizeRequest) -> list[int]:
    if (body.prompt is None) == (body.messages is None):
        raise APIError(400, "invalid_parameter", "give either prompt or messages", param="prompt")
    if body.prompt is not None:
        if body.tools:
            raise APIError(400, "invalid_parameter", "tools go with messages", param="tools")
        return model.tokenizer(body.prompt)["input_ids"]
    if (total := sum(len(m.text()) for m in body.messages)) > 4 * MAX_CONTENT_CHARS:
        raise APIError(
            422,
            "invalid_value",
            f"at most {4 * MAX_CONTENT_CHARS} characters in all messages, got {total}",
            param="messages",
        )
    return chat_prompt(model, body.messages, body.tools, body.add_generation_prompt)


@router.post("/tokenize", responses=error_responses(400, 404))
async def tokenize(body: TokenizeRequest, hub: Hub) -> TokenizeResponse:
    """Token ids of `prompt`, or of `messages` through the chat template."""
    model = hub.get(body.model).model
    tokens = await offload(_tokens, model, body)
    strs = [model.token_text.text(t) for t in tokens] if body.return_token_strs else None
    return TokenizeResponse(
        count=len(tokens), max_model_len=model.context, tokens=tokens, token_strs=strs
    )


@router.post("/detokenize", responses=error_responses(400, 404))
async def detokenize(body: DetokenizeRequest, hub: Hub) -> DetokenizeResponse:
    """The text of token ids (special tokens kept, as they were given)."""
    model = hub.get(body.model).model
    if bad := [t for t in body.tokens if t >= model.vocab_size]:
        raise APIError(
            400,
            "invalid_parameter",
            f"token id {bad[0]} is outside the vocabulary of {model.vocab_size}",
            param="tokens",
            limit=model.vocab_size,
        )
    text = await offload(model.tokenizer.decode, body.tokens)
    return DetokenizeResponse(prompt=text)
