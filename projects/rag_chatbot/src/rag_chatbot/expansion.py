"""Query expansion with the generator (HyDE, Gao et al. 2022): a question is searched together
with the generator's own one-sentence answer to it, which names what the question only describes
("Which river flows through Cairo?" -> "The Nile flows through Cairo, Egypt, ..."). Even the
135M model knows many such names; the answer need not be right to land near the right article.
The question's own relevance still decides what clears the floor (`Rag.retrieve(question=)`).
Costs one short generation before retrieval; measured by rag_natural_eval."""

import asyncio
from typing import Any

PROMPT = "{question} Answer in one sentence."
MAX_TOKENS = 40  # one sentence


def expanded(question: str, answer: str) -> str:
    return f"{question} {answer.strip()}".strip()


async def hyde_answer(generator, question: str, *, max_tokens: int = MAX_TOKENS) -> str:
    """The generator's greedy one-sentence answer to `question`."""
    message = {"role": "user", "content": PROMPT.format(question=question)}
    return await generator.complete([message], max_tokens=max_tokens, temperature=0.0)


async def hyde_query(generator, question: str) -> str:
    """What the service searches for `question`; the question alone when the generator fails
    (an expansion must not fail the answer)."""
    try:
        return expanded(question, await hyde_answer(generator, question))
    except Exception:
        return question


async def hyde_answers(
    generator, questions: list[str], *, max_tokens: int, concurrency: int
) -> list[str]:
    """`hyde_answer` of each question, `concurrency` at a time."""
    slots = asyncio.Semaphore(concurrency)

    async def one(question: str) -> str:
        async with slots:
            return await hyde_answer(generator, question, max_tokens=max_tokens)

    return await asyncio.gather(*(one(q) for q in questions))


def hyde_queries(
    url: str, g: dict[str, Any], questions: list[str], *, max_tokens: int = MAX_TOKENS
) -> dict[str, str]:
    """question -> the query HyDE searches with, answered through the generator at `url`."""
    from rag_chatbot.generator import OpenAIGenerator

    async def run() -> list[str]:
        generator = OpenAIGenerator(url, model=g.get("model", ""), timeout_s=900)
        try:
            return await hyde_answers(
                generator, questions, max_tokens=max_tokens, concurrency=g.get("concurrency", 8)
            )
        finally:
            await generator.close()

    answers = asyncio.run(run())
    return {q: expanded(q, a) for q, a in zip(questions, answers, strict=True)}
