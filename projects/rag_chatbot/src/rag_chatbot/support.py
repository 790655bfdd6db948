"""Does a passage support a sentence? A lexical measure, shared by citation attribution and the
evaluation: the share of the sentence's content words that the passage holds, and 0 when the
sentence names a number or a proper noun (a capitalised word after the first) the passage lacks,
which is how a small model's hallucinations usually show.

It is a proxy, not an entailment judge: a sentence that reuses a passage's words to say the
opposite still scores high. It is deterministic, explainable and needs no second model.
"""

import re
from collections.abc import Sequence
from functools import lru_cache

from rag_chatbot.prompts import strip_citations

STOP_WORDS = frozenset(
    re.findall(
        r"\S+",
        """a about above after again against all also am an and any are as at be
because been before being below between both but by can could did do does doing down during each
few for from further had has have having he her here hers herself him himself his how i if in into
is it its itself just me more most my myself no nor not now of off on once only or other our ours
out over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which while
who whom why will with would you your yours known called one two many much may might must its
""",
    )
)
WORD = re.compile(r"[a-z0-9]+")


def _stem(word: str) -> str:
    """Enough stemming to match plurals and simple inflections (cities/city, painted/paint)."""
    for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + repl
    return word


@lru_cache(maxsize=4096)
def content_words(text: str) -> frozenset[str]:
    words = WORD.findall(strip_citations(text).lower())
    return frozenset(_stem(w) for w in words if w not in STOP_WORDS and (len(w) > 2 or w.isdigit()))


@lru_cache(maxsize=4096)
def key_terms(sentence: str) -> frozenset[str]:
    words = re.findall(r"[A-Za-z0-9]+", strip_citations(sentence))
    keys = (w.lower() for i, w in enumerate(words) if w[0].isdigit() or (i and w[0].isupper()))
    return frozenset(_stem(w) for w in keys if w not in STOP_WORDS)


def support(sentence: str, passage: str) -> float:
    """In [0, 1]; 1.0 for a sentence with no content words (nothing to support)."""
    wanted = content_words(sentence)
    if not wanted:
        return 1.0
    found = content_words(passage)
    if key_terms(sentence) - found:
        return 0.0
    return len(wanted & found) / len(wanted)


def best_support(sentence: str, passages: Sequence[str]) -> tuple[int, float]:
    """(index of the passage that supports `sentence` most, its score); (-1, 0.0) if none."""
    scores = [support(sentence, p) for p in passages]
    if not scores:
        return -1, 0.0
    best = max(range(len(scores)), key=scores.__getitem__)
    return best, scores[best]
