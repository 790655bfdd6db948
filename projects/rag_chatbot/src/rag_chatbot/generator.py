"""Generation through any OpenAI-compatible chat endpoint: the LLM chat service by default, or
vLLM, llama.cpp's server, Ollama or a hosted API (set the base URL, key and model).

Upstream failures become `GeneratorError`s with the status our API should answer.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol


class GeneratorError(RuntimeError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class Generator(Protocol):
    model: str

    def stream(
        self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float
    ) -> AsyncIterator[str]: ...


class OpenAIGenerator:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "none",
        model: str = "",
        timeout_s: float = 120.0,
        seed: int | None = 0,
    ) -> None:
        """`model` empty: the first id the endpoint lists under /v1/models."""
        from openai import AsyncOpenAI

        self.base_url = base_url
        self.client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or "none", timeout=timeout_s, max_retries=1
        )
        self.model = model
        self.seed = seed

    async def resolve_model(self) -> str:
        if not self.model:
            async with self._errors():
                models = await self.client.models.list()
            if not models.data:
                raise GeneratorError(502, "generator_no_model", f"{self.base_url} lists no models")
            self.model = models.data[0].id
        return self.model

    async def stream(
        self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float
    ) -> AsyncIterator[str]:
        model = await self.resolve_model()
        async with self._errors():
            chunks = await self.client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=self.seed,
                stream=True,
            )
            async for chunk in chunks:
                if chunk.choices and (text := chunk.choices[0].delta.content):
                    yield text

    async def complete(
        self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float
    ) -> str:
        return "".join(
            [t async for t in self.stream(messages, max_tokens=max_tokens, temperature=temperature)]
        )

    def _errors(self):
        return upstream_errors(self.base_url)

    async def close(self) -> None:
        await self.client.close()


@asynccontextmanager
async def upstream_errors(base_url: str) -> AsyncIterator[None]:
    """The OpenAI client's exceptions as `GeneratorError`s that name the endpoint."""
    import openai

    where = f"the generator at {base_url}"
    try:
        yield
    except openai.APITimeoutError as e:
        raise GeneratorError(504, "generator_timeout", f"{where} did not answer in time") from e
    except openai.APIConnectionError as e:
        raise GeneratorError(502, "generator_unavailable", f"{where} is unreachable") from e
    except (openai.RateLimitError, openai.InternalServerError) as e:
        raise GeneratorError(
            503, "generator_busy", f"{where} is busy or failing ({e.status_code}); retry shortly"
        ) from e
    except openai.APIStatusError as e:
        raise GeneratorError(
            502, "generator_error", f"{where} answered {e.status_code}: {e.message}"
        ) from e
    except openai.APIError as e:  # e.g. an error event in the middle of a stream
        raise GeneratorError(502, "generator_error", f"{where} failed: {e.message}") from e
