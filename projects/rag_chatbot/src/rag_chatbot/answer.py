"""Question -> retrieval -> numbered sources within a token budget -> generation -> citations.

    rag = Rag(retriever, generator, tokenizer, RagConfig())
    async for event in rag.stream(messages): ...   # retrieval, delta..., answer

Nothing relevant retrieved (every source under `min_relevance`, the cosine of query and chunk)
means the plain no-answer, without calling the generator.
"""

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from tokenizers import Tokenizer

from rag_chatbot import prompts
from rag_chatbot.expansion import hyde_query
from rag_chatbot.generator import Generator
from rag_chatbot.support import best_support, support
from semantic_search.documents import Filters, Hit
from semantic_search.retrieval import Retriever


@dataclass(frozen=True)
class RagConfig:
    k: int = 5  # sources at most
    mode: str = "hybrid"  # dense | bm25 | hybrid
    diversify: float | None = 0.7  # MMR lambda; None: plain relevance order
    # Chunks of one document among the k before other documents' (more only when no other
    # document clears the floor); None: relevance order alone.
    max_per_document: int | None = None
    rerank: bool = False  # reorder the candidates with the retriever's cross-encoder first
    min_relevance: float = 0.55  # cosine(query, chunk) below which a chunk is not used
    context_tokens: int = 1024  # the sources' budget, in the generator's tokens
    answer_tokens: int = 256
    temperature: float = 0.0
    rewrite: bool = True  # follow-ups rewritten into standalone queries with the history
    expand: str | None = None  # "hyde": searched with the generator's answer too (expansion.py)
    attribute: bool = True  # cite unsupported-by-marker sentences by their best source
    support_threshold: float = 0.5


@dataclass
class Source:
    n: int
    id: str
    doc_id: str
    title: str
    file: str
    page: int | None
    section: str
    text: str
    relevance: float
    tokens: int = 0

    def ref(self) -> prompts.SourceRef:
        return prompts.SourceRef(self.title, self.text, self.page, self.section)


@dataclass
class Retrieval:
    query: str
    sources: list[Source]
    candidates: int  # hits above the relevance floor, before the token budget
    top_relevance: float | None
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Citation:
    n: int
    source: Source
    attributed: bool  # added by support matching, not written by the model


def _source(hit: Hit, relevance: float) -> Source:
    d, meta = hit.document, hit.document.metadata
    page = meta.get("page")
    return Source(
        0,
        d.id,
        str(meta.get("doc_id", d.source)),
        d.title,
        str(meta.get("file", "")),
        int(page) if page else None,
        str(meta.get("section", "")),
        d.text,
        round(relevance, 4),
    )


def cite(
    answer: str, sources: list[Source], *, attribute: bool, threshold: float
) -> tuple[str, list[Citation], int]:
    """-> (answer, citations in order, invalid markers dropped). With `attribute`, a sentence
    without a marker is cited to the source that supports it best, if that reaches `threshold`."""
    numbers = prompts.cited_numbers(answer)
    valid = [n for n in numbers if 1 <= n <= len(sources)]
    citations = [Citation(n, sources[n - 1], False) for n in valid]
    if attribute and sources and not prompts.is_no_answer(answer):
        passages = [s.text for s in sources]
        out = []
        for sentence in prompts.split_sentences(answer):
            if not prompts.cited_numbers(sentence):
                best, score = best_support(sentence, passages)
                if score >= threshold:
                    sentence = f"{sentence} [{best + 1}]"
                    if best + 1 not in {c.n for c in citations}:
                        citations.append(Citation(best + 1, sources[best], True))
            out.append(sentence)
        answer = " ".join(out)
    return answer, sorted(citations, key=lambda c: c.n), len(numbers) - len(valid)


class Rag:
    def __init__(
        self,
        retriever: Retriever,
        generator: Generator,
        tokenizer: Tokenizer,
        config: RagConfig = RagConfig(),
    ) -> None:
        self.retriever, self.generator, self.tokenizer = retriever, generator, tokenizer
        self.config = config

    # -- retrieval --------------------------------------------------------------------------------

    def retrieve(
        self,
        query: str,
        config: RagConfig,
        filters: Filters | None = None,
        *,
        question: str | None = None,
    ) -> Retrieval:
        """`question`: the user's own words where `query` expands them (HyDE, expansion.py):
        the expansion retrieves, the question's relevance decides what clears the floor, so a
        generated answer does not make an unanswerable question look answerable."""
        t0 = time.perf_counter()
        # With a per-document cap the retriever hands over all its candidates, one chunk of each
        # document first: the floor below may drop the other documents (a question about one
        # upload), and then that document's next chunks fill the k places.
        spread = config.max_per_document is not None
        # The retriever encodes the query itself (in hybrid mode, while BM25 runs) and hands the
        # vector back; only BM25 without MMR leaves it to be encoded here, for the relevance floor.
        result = self.retriever.search(
            query,
            k=max(config.k, self.retriever.candidates) if spread else config.k,
            mode=config.mode,
            filters=filters,
            diversify=config.diversify,
            with_vectors=True,
            max_per_source=config.max_per_document,
            rerank=config.rerank,
            rerank_query=question,
        )
        vector = result.query_vector
        if question is not None and question != query:
            vector, _, _ = self.retriever.embed_query(question)
        elif vector is None:
            vector, _, _ = self.retriever.embed_query(query)
        scored = [(float(h.vector @ vector), h) for h in result.hits]  # in retrieval order
        top = max((score for score, _ in scored), default=None)
        relevant = [_source(h, score) for score, h in scored if score >= config.min_relevance]
        candidates = relevant[: config.k]
        blocks = [prompts.source_block(n, s.ref()) for n, s in enumerate(candidates, start=1)]
        counts = [len(e.ids) for e in self.tokenizer.encode_batch(blocks, add_special_tokens=False)]
        sources: list[Source] = []
        used = 0
        for source, tokens in zip(candidates, counts, strict=True):
            if used + tokens > config.context_tokens:
                break  # keep the best sources whole rather than cut one
            sources.append(replace(source, n=len(sources) + 1, tokens=tokens))
            used += tokens
        timings = {"retrieval": (time.perf_counter() - t0) * 1000}
        return Retrieval(query, sources, len(candidates), top, timings)

    # -- conversation -----------------------------------------------------------------------------

    async def standalone_query(self, messages: Sequence[dict[str, str]], config: RagConfig) -> str:
        """The last user message, rewritten with the history when there is one (the "condense
        question" pattern: the rewrite is retrieved with and answered). A rewrite that is empty, a
        refusal, or drops the question's own words or names (a small model answers instead of
        rewriting) falls back to the previous question + this one."""
        question = messages[-1]["content"].strip()
        history = [m for m in messages[:-1] if m["role"] in ("user", "assistant")]
        if not history or not config.rewrite:
            return question
        try:
            text = await self.generator.complete(
                prompts.rewrite_messages(history[-6:], question), max_tokens=48, temperature=0.0
            )
        except Exception:  # a failed rewrite must not fail the answer
            text = ""
        line = text.strip().strip('"').splitlines()[0].strip() if text.strip() else ""
        keeps_question = support(question, line) >= 0.5
        if 3 <= len(line) <= 300 and keeps_question and not prompts.is_no_answer(line):
            return line
        previous = [m["content"] for m in history if m["role"] == "user"][-1:]
        return " ".join([*previous, question])

    async def search_query(self, question: str, config: RagConfig) -> tuple[str, float]:
        """(what to search for `question`, ms spent expanding it): its HyDE expansion where
        `config.expand` says so, else the question itself. Retrieve with `question=question`:
        the question's own relevance meets the floor."""
        if config.expand != "hyde":
            return question, 0.0
        started = time.perf_counter()
        search = await hyde_query(self.generator, question)
        return search, (time.perf_counter() - started) * 1000

    # -- answering --------------------------------------------------------------------------------

    async def stream(
        self, messages: Sequence[dict[str, str]], config: RagConfig, filters: Filters | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Events: `retrieval` (query, sources), `delta` (text) ..., `answer` (the final answer,
        citations, no_answer, timings)."""
        from mlstack.serve import offload  # the bounded CPU pool: encoding and tokenizing

        t0 = time.perf_counter()
        query = await self.standalone_query(messages, config)
        # "rewrite" is timed only where there was a history to rewrite with.
        timings = (
            {"rewrite": (time.perf_counter() - t0) * 1000}
            if len(messages) > 1 and config.rewrite
            else {}
        )
        search, expand_ms = await self.search_query(query, config)
        if config.expand:
            timings["expand"] = expand_ms
        retrieval = await offload(self.retrieve, search, config, filters, question=query)
        timings |= retrieval.timings_ms
        yield {
            "type": "retrieval",
            "query": query,
            "sources": [asdict(s) for s in retrieval.sources],
            "top_relevance": retrieval.top_relevance,
        }
        text = ""
        if retrieval.sources:
            t1 = time.perf_counter()
            chat = prompts.answer_messages(query, [s.ref() for s in retrieval.sources])
            async for delta in self.generator.stream(
                chat, max_tokens=config.answer_tokens, temperature=config.temperature
            ):
                if not text:
                    timings["first_token"] = (time.perf_counter() - t1) * 1000
                text += delta
                yield {"type": "delta", "text": delta}
            timings["generation"] = (time.perf_counter() - t1) * 1000
        no_answer = not retrieval.sources or prompts.is_no_answer(text)
        if no_answer:
            text, citations, invalid = prompts.NO_ANSWER, [], 0
        else:
            text, citations, invalid = cite(
                text.strip(),
                retrieval.sources,
                attribute=config.attribute,
                threshold=config.support_threshold,
            )
        yield {
            "type": "answer",
            "answer": text,
            "no_answer": no_answer,
            "query": query,
            "citations": citations,
            "invalid_citations": invalid,
            "retrieval": retrieval,
            "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        }

    async def answer(
        self, messages: Sequence[dict[str, str]], config: RagConfig, filters: Filters | None = None
    ) -> dict[str, Any]:
        async for event in self.stream(messages, config, filters):
            if event["type"] == "answer":
                return event
        raise RuntimeError("the answer stream ended without an answer")
