"""What a service serves: models with a card (name, version, checksum, load time) and a batcher."""

import asyncio
import functools
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlstack.serve.batching import MicroBatcher
from mlstack.serve.errors import APIError
from mlstack.serve.shadow import Shadow


@dataclass
class ModelCard:
    name: str
    version: str
    path: str | None = None
    sha256: str | None = None
    load_seconds: float = 0.0
    loaded_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)
    # Set to a served model's name to run this one as its shadow (see mlstack.serve.shadow).
    shadow_of: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """An entry of `GET /v1/models`, in OpenAI's shape plus our fields."""
        return {
            "id": self.name,
            "object": "model",
            "created": int(self.loaded_at),
            "owned_by": "mlstack",
            "version": self.version,
            "path": self.path,
            "sha256": self.sha256,
            "load_seconds": round(self.load_seconds, 3),
            **self.extra,
        }


class ServedModel(Protocol):
    """A loaded model. `predict_batch` takes a plain list and returns a list of the same length;
    a model that schedules its own work (an LLM engine's continuous batching) sets it to None
    and gets no micro-batcher. `close()`, where defined, runs at shutdown."""

    card: ModelCard

    def predict_batch(self, items: list[Any]) -> list[Any]: ...

    def warmup(self) -> None: ...


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The file's SHA-256, read once per version of the file: a service that checks one model
    in several places (its card, its index's stamp) hashes it once at start-up."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, chunk)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int, chunk: int) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Deployment:
    model: ServedModel
    batcher: MicroBatcher | None
    shadow: Shadow | None = None

    async def predict(self, items: list[Any], request_id: str | None = None) -> list[Any]:
        """The model's outputs; with a shadow, a copy of the inputs and outputs is offered to it
        after the answer (never awaited: the caller gets the same result just as fast)."""
        if self.batcher is None:
            raise TypeError(f"{self.model.card.name} has no predict_batch")
        started = time.perf_counter()
        outputs = await self.batcher.submit_many(items)
        if self.shadow is not None:
            self.shadow.offer(items, outputs, time.perf_counter() - started, request_id)
        return outputs

    async def stop(self) -> None:
        """Drains the batcher, then lets the model release what it holds."""
        if self.shadow is not None:
            await self.shadow.stop()
            await _close(self.shadow.model)
        if self.batcher is not None:
            await self.batcher.stop()
        await _close(self.model)


async def _close(model: ServedModel) -> None:
    close = getattr(model, "close", None)
    if close is not None:
        await asyncio.to_thread(close)


class ModelHub:
    """The models of one service, by name; the first one registered is the default."""

    def __init__(self) -> None:
        self._deployments: dict[str, Deployment] = {}

    def add(self, deployment: Deployment) -> None:
        self._deployments[deployment.model.card.name] = deployment

    def get(self, name: str | None = None) -> Deployment:
        if name is None:
            if not self._deployments:
                raise APIError(503, "not_ready", "no model is loaded", headers={"Retry-After": "1"})
            return next(iter(self._deployments.values()))
        try:
            return self._deployments[name]
        except KeyError:
            known = ", ".join(self._deployments) or "none"
            raise APIError(
                404, "model_not_found", f"unknown model {name!r}; loaded: {known}", param="model"
            ) from None

    def __iter__(self):
        return iter(self._deployments.values())

    def __len__(self) -> int:
        return len(self._deployments)
