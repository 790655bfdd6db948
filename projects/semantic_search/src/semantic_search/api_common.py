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


def tokenize_checked(
    encoder: Encoder,
    texts: list[str],
    param: str,
    truncate: bool,
    *,
    indexed: bool = False,
    budget: int | None = None,
) -> Tokenized:
    """The texts' tokens, one text at a time: the first over the token window is a 400 naming
    it (`param.i` where `indexed`), unless `truncate`; so is passing `budget` tokens, all texts
    together as truncated. Each is refused before the texts after it are tokenized: in one batch,
    256 texts of 20,000 characters took 2.9 s of CPU to refuse the first."""
    limit = encoder.max_tokens
    ids: list[list[int]] = []
    counts: list[int] = []
    used = 0
    for i, text in enumerate(texts):
        one = encoder.tokenize([text])
        count = int(one.token_counts[0])
        if count > limit and not truncate:
            where = f"{param}.{i}" if indexed else param
            raise APIError(
                400,
                "too_many_tokens",
                f"{where} has {count} tokens, over the limit of {limit}; "
                "shorten it or send truncate=true",
                param=where,
                limit=limit,
            )
        used += min(count, limit)
        if budget is not None and used > budget:
            raise APIError(
                400,
                "too_many_tokens",
                f"the first {i + 1} inputs hold {used} tokens, over the budget of {budget} "
                "per request; split them",
                param=param,
                limit=budget,
            )
        ids += one.ids
        counts.append(count)
    token_counts = np.array(counts, dtype=np.int64)
    return Tokenized(ids, token_counts, token_counts > limit)
