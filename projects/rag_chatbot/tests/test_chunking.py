"""Chunking invariants on real text: size, structure, coverage, overlap, de-duplication."""

import itertools

import pytest

from mlstack.datasets import wiki_summaries
from rag_chatbot.chunking import chunk_sections, count_tokens, load_tokenizer
from rag_chatbot.extract import Section


@pytest.fixture(scope="module")
def tokenizer(encoder_dir):
    return load_tokenizer(str(encoder_dir))


@pytest.fixture(scope="module")
def sections() -> list[Section]:
    articles = wiki_summaries()[:40]
    return [
        Section(a["extract"], heading=a["title"], page=i % 3 + 1) for i, a in enumerate(articles)
    ]


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(("size", "overlap"), [(32, 0), (48, 8), (120, 24)])
def test_no_chunk_exceeds_the_size_in_tokens(tokenizer, sections, size, overlap):
    chunks, _ = chunk_sections(sections, tokenizer, chunk_tokens=size, overlap_tokens=overlap)
    counted = count_tokens(tokenizer, [c.text for c in chunks])
    assert max(counted) <= size
    assert [c.tokens for c in chunks] == counted


def test_chunks_stay_inside_one_section_and_cover_it(tokenizer, sections):
    chunks, _ = chunk_sections(sections, tokenizer, chunk_tokens=40, overlap_tokens=8)
    for section in sections:
        mine = [c for c in chunks if (c.heading, c.page) == (section.heading, section.page)]
        assert mine, section.heading
        for c in mine:  # structure: text from this section only, in its order
            assert squash(c.text) in squash(section.text)
        covered = " ".join(squash(c.text) for c in mine)
        for word in section.text.split():  # coverage: no word lost
            assert word in covered


def test_neighbours_overlap_by_at_most_the_overlap(tokenizer, sections):
    overlap = 12
    chunks, _ = chunk_sections(sections, tokenizer, chunk_tokens=40, overlap_tokens=overlap)
    shared_any = False
    for a, b in itertools.pairwise(chunks):
        if a.heading != b.heading:
            continue
        # the longest suffix of a that is a prefix of b
        words_a, words_b = a.text.split(), b.text.split()
        shared = max(
            (
                n
                for n in range(1, min(len(words_a), len(words_b)) + 1)
                if words_a[-n:] == words_b[:n]
            ),
            default=0,
        )
        if shared:
            shared_any = True
            assert count_tokens(tokenizer, [" ".join(words_b[:shared])])[0] <= overlap
    assert shared_any, "short sentences should have been carried over"


def test_a_sentence_longer_than_a_chunk_is_cut_in_windows(tokenizer):
    long = " ".join(f"word{i}" for i in range(300)) + "."
    chunks, _ = chunk_sections([Section(long)], tokenizer, chunk_tokens=50, overlap_tokens=10)
    assert len(chunks) > 2 and all(c.tokens <= 50 for c in chunks)
    assert "word0" in chunks[0].text and "word299" in chunks[-1].text


def test_duplicates_are_dropped_whatever_the_case_and_spacing(tokenizer):
    footer = "Copyright Example Corp. All rights reserved."
    sections = [Section(f"Page {i} has its own text. {footer}", page=i) for i in (1, 2)]
    sections.append(Section(footer.upper().replace(" ", "  "), page=3))
    chunks, dropped = chunk_sections(sections, tokenizer, chunk_tokens=8, overlap_tokens=0)
    assert dropped == 2
    assert sum(c.text.lower() == footer.lower() for c in chunks) == 1


def test_chunking_is_deterministic(tokenizer, sections):
    def run():
        return chunk_sections(sections, tokenizer, chunk_tokens=40, overlap_tokens=8)

    assert run() == run()


def test_overlap_must_be_smaller_than_the_chunk(tokenizer):
    with pytest.raises(ValueError, match="overlap_tokens"):
        chunk_sections([Section("x")], tokenizer, chunk_tokens=10, overlap_tokens=10)
