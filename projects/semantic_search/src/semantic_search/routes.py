"""The HTTP routes: /v1/search (search_api.py), /v1/embeddings (embeddings_api.py), /v1/documents
and /v1/stats (documents_api.py), and how a schema error is answered. They reach what the service
loaded only through `requires` (503 + Retry-After until it is there), and do input-sized CPU work
(tokenizing, highlighting, embedding, index reads) in the bounded pool (`offload`), never on the
event loop."""

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError

from mlstack.serve import APIError
from mlstack.serve.errors import body_of, error_response, validation_error
from semantic_search import documents_api, embeddings_api, search_api
from semantic_search.schemas import TOKEN_IDS

router = APIRouter()
# In this order: the OpenAPI document lists the paths as they were added.
for api in (search_api, embeddings_api, documents_api):
    router.include_router(api.router)


def install_validation_handler(app: FastAPI) -> None:
    """Schema errors as mlstack answers them (422), except token-id embeddings input: a 400 with
    the client setting that sends text, found before any tokenizing or encoding."""

    def handler(request: Request, exc: RequestValidationError):
        errors = list(exc.errors())
        token_ids = next((e for e in errors if e.get("type") == TOKEN_IDS), None)
        if token_ids is not None:
            return error_response(
                request, APIError(400, TOKEN_IDS, token_ids["msg"], param="input")
            )
        return error_response(request, validation_error(errors, **body_of(request)))

    app.add_exception_handler(RequestValidationError, handler)
