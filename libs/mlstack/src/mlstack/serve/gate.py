"""The readiness gate: the only way a route reaches what the service loaded at start-up.

A loader puts what it builds into `app.state.resources` (a dict); routes ask for it by type:

    RetrieverDep = Annotated[Retriever, Depends(requires("retriever"))]

    @router.post("/v1/search")
    async def search(body: SearchRequest, retriever: RetrieverDep): ...

Until loading and warm-up finish, and forever after a failed load, the dependency answers
503 + Retry-After with the reason, so no route can touch state that is not there yet.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from mlstack.serve.errors import APIError

RETRY_AFTER_S = "1"


@dataclass
class Readiness:
    """`failed` is permanent: the process cannot serve, so liveness fails and the supervisor
    (Kubernetes, compose's restart policy via the healthcheck) restarts it."""

    ready: bool = False
    failed: bool = False
    reason: str = "loading models"

    def fail(self, reason: str) -> None:
        self.ready, self.failed, self.reason = False, True, reason


def not_ready(readiness: Readiness) -> APIError:
    return APIError(503, "not_ready", readiness.reason, headers={"Retry-After": RETRY_AFTER_S})


def requires(key: str) -> Callable[[Request], Any]:
    """A FastAPI dependency handing a route `app.state.resources[key]` once the service is ready."""

    def loaded(request: Request) -> Any:
        readiness: Readiness = request.app.state.readiness
        if not readiness.ready:
            raise not_ready(readiness)
        try:
            return request.app.state.resources[key]
        except KeyError:  # a loader that forgot to provide it: a bug, said plainly
            raise APIError(503, "not_ready", f"{key} was not loaded") from None

    loaded.__name__ = f"requires_{key}"
    return loaded
