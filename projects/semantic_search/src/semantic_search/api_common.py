"""What the search service's routes share: the retriever the service loaded (reached through
`requires`: 503 + Retry-After until it is there), and a client's text tokenized with the token
window checked."""

from typing import Annotated

import numpy as np
from fastapi import Depends

from mlstack.serve import APIError, requires
from semantic_search.encoder import Encoder, Tokenized
from semantic_search.retrieval import Retriever

RetrieverDep = Annotated[Retriever, Depends(requires("retriever"))]


def tokenize_checked(encoder: Encoder, texts: list[str], param: str, truncate: bool) -> Tokenized:
    """The texts' tokens; one over the token window is a 400 naming it, unless `truncate`."""
    tokens = encoder.tokenize(texts)
    if not truncate and tokens.truncated.any():
        i = int(np.argmax(tokens.truncated))
        where = f"{param}[{i}]" if param == "input" and len(texts) > 1 else param
        raise APIError(
            400,
            "too_many_tokens",
            f"{where} has {tokens.token_counts[i]} tokens, over the "
            f"limit of {encoder.max_tokens}; shorten it or send truncate=true",
            param=where,
            limit=encoder.max_tokens,
        )
    return tokens
