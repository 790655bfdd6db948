"""`/v1/embeddings`: OpenAI-compatible embeddings, within the service's input and token limits."""

import base64

import numpy as np
from fastapi import APIRouter, Request

from mlstack.serve import APIError, Hub, error_responses, offload
from semantic_search.api_common import tokenize_checked
from semantic_search.encoder import Encoder
from semantic_search.schemas import Embedding, EmbeddingsRequest, EmbeddingsResponse, Usage

router = APIRouter(prefix="/v1", tags=["search"])


@router.post(
    "/embeddings",
    response_model=EmbeddingsResponse,
    tags=["openai"],
    responses=error_responses(400, 404),
)
async def embeddings(body: EmbeddingsRequest, request: Request, hub: Hub) -> EmbeddingsResponse:
    """OpenAI-compatible embeddings (the `openai` client's `embeddings.create`, LangChain's
    `OpenAIEmbeddings(check_embedding_ctx_length=False)`). 400 for token-id input, `dimensions`
    other than the model's, a text over the token window (unless `truncate`) or a request over
    the token budget."""
    settings = request.app.state.settings
    deployment = hub.get(body.model) if body.model else hub.get()
    encoder: Encoder = deployment.model.encoder
    texts = [body.input] if isinstance(body.input, str) else body.input
    if len(texts) > settings.max_inputs:
        raise APIError(
            400,
            "too_many_inputs",
            f"{len(texts)} inputs, over the limit of {settings.max_inputs}",
            param="input",
            limit=settings.max_inputs,
        )
    if body.dimensions is not None and body.dimensions != encoder.dim:
        raise APIError(
            400,
            "unsupported_dimensions",
            f"this model returns {encoder.dim} dimensions",
            param="dimensions",
            limit=encoder.dim,
        )
    tokens = await offload(
        tokenize_checked,
        encoder,
        texts,
        "input",
        body.truncate,
        indexed=isinstance(body.input, list),
        budget=settings.max_request_tokens,
    )
    used = int(np.minimum(tokens.token_counts, encoder.max_tokens).sum())
    vectors = await deployment.predict(tokens.ids)
    data = [
        Embedding(
            index=i,
            embedding=base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else v.tolist(),
        )
        for i, v in enumerate(vectors)
    ]
    return EmbeddingsResponse(
        data=data,
        model=deployment.model.card.name,
        usage=Usage(prompt_tokens=used, total_tokens=used),
    )
