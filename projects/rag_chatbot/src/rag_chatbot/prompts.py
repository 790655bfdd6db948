"""The prompts, and reading citations back out of an answer.

The sources are numbered in the prompt; the model is asked to cite them as `[n]` and to answer
exactly `NO_ANSWER` when they do not hold the answer.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

NO_ANSWER = "I don't know from these documents."
_NO_ANSWER_MARKERS = (
    "i don't know from these documents",
    "i do not know from these documents",
    "i don't know based on these documents",
)

SYSTEM = (
    "You answer questions using only the numbered sources you are given. After each sentence, "
    "cite the sources that support it by their numbers in square brackets, like [1] or [1][3]. "
    f'If the sources do not contain the answer, reply exactly: "{NO_ANSWER}" Do not guess.'
)

REWRITE = (
    "Rewrite the user's last question as one standalone search query that names what the "
    "conversation refers to (replace 'it', 'they', 'he', 'she', 'that'). Reply with the query "
    "only, on one line."
)

CITATION = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# A sentence ends at . ! ? after a lowercase letter, a digit or a closing mark (not after an
# initial, as in "J. D. Salinger"), before a capital, a digit or an opening mark.
SENTENCE = re.compile(r"(?<=[a-z0-9)\]\"'][.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")


@dataclass(frozen=True)
class SourceRef:
    """What the prompt shows of a source."""

    title: str
    text: str
    page: int | None = None
    section: str = ""

    def header(self) -> str:
        where = [f"page {self.page}"] if self.page else []
        where += [self.section] if self.section else []
        return f"{self.title} ({', '.join(where)})" if where else self.title


def source_block(n: int, source: SourceRef) -> str:
    return f"[{n}] {source.header()}\n{source.text}"


def answer_messages(question: str, sources: Sequence[SourceRef]) -> list[dict[str, str]]:
    blocks = "\n\n".join(source_block(n, s) for n, s in enumerate(sources, start=1))
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Sources:\n\n{blocks}\n\nQuestion: {question}"},
    ]


def rewrite_messages(history: Sequence[dict[str, str]], question: str) -> list[dict[str, str]]:
    turns = "\n".join(f"{m['role']}: {m['content']}" for m in history)
    return [
        {"role": "system", "content": REWRITE},
        {"role": "user", "content": f"Conversation:\n{turns}\n\nLast question: {question}"},
    ]


def is_no_answer(answer: str) -> bool:
    lowered = answer.strip().lower().replace("\u2019", "'")
    return not lowered or any(m in lowered for m in _NO_ANSWER_MARKERS)


def cited_numbers(text: str) -> list[int]:
    """Every `[n]` and `[n, m]` in order of first appearance."""
    seen: list[int] = []
    for match in CITATION.finditer(text):
        for n in (int(x) for x in match.group(1).split(",")):
            if n not in seen:
                seen.append(n)
    return seen


# Markers that open a fragment after a sentence end: "water. [1] Next" cites the sentence before.
LEADING_CITATIONS = re.compile(r"(?:\[\d{1,3}(?:\s*,\s*\d{1,3})*\]\s*)+")


def split_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for piece in SENTENCE.split(text):
        piece = piece.strip()
        if sentences and (lead := LEADING_CITATIONS.match(piece)):
            sentences[-1] += " " + lead.group().strip()
            piece = piece[lead.end() :].strip()
        if len(piece) > 1:
            sentences.append(piece)
    return sentences


def strip_citations(text: str) -> str:
    return " ".join(re.sub(r"(?<!\s)\s*" + CITATION.pattern, "", text).split())
