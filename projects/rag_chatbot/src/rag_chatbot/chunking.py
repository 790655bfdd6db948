"""Sections -> chunks: by structure first (a chunk never crosses a heading or a page), then by
size, counted in the embedding model's tokens, with a token overlap between neighbours.

Sentences are packed whole while they fit; a sentence longer than a chunk is cut into token
windows. Identical chunks (after normalising case and spaces) are kept once.
"""

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tokenizers import Tokenizer

from rag_chatbot.extract import Section

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


@dataclass(frozen=True)
class Chunk:
    text: str
    tokens: int
    heading: str = ""
    page: int | None = None

    def key(self) -> str:
        """The same for texts that differ only in case and spacing."""
        return hashlib.sha1(" ".join(self.text.lower().split()).encode()).hexdigest()


@dataclass(frozen=True)
class _Unit:
    text: str
    tokens: int
    paragraph_start: bool


def load_tokenizer(path: str) -> Tokenizer:
    """A `tokenizer.json` (or a folder holding one); counting only, so no padding or truncation."""
    from pathlib import Path

    file = Path(path) / "tokenizer.json" if Path(path).is_dir() else Path(path)
    tokenizer = Tokenizer.from_file(str(file)) if file.exists() else Tokenizer.from_pretrained(path)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def count_tokens(tokenizer: Tokenizer, texts: Sequence[str]) -> list[int]:
    return [len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def _windows(text: str, offsets: list[tuple[int, int]], size: int, overlap: int) -> list[str]:
    """A text longer than `size` tokens as windows of at most `size` tokens that end and start
    between words where they can, each starting `overlap` tokens (or fewer) before the last end."""
    n, start, out = len(offsets), 0, []

    def at_word_start(i: int) -> bool:
        return offsets[i][0] == 0 or text[offsets[i][0] - 1].isspace()

    while start < n:
        end = min(start + size, n)
        if end < n:  # back off to a word boundary, unless one word fills the window
            end = next((j for j in range(end, start, -1) if at_word_start(j)), end)
        out.append(text[offsets[start][0] : offsets[end - 1][1]].strip())
        if end == n:
            break
        start = next(
            (i for i in range(max(end - overlap, start + 1), end) if at_word_start(i)), end
        )
    return [w for w in out if w]


def _units(tokenizer: Tokenizer, text: str, max_tokens: int, overlap: int) -> list[_Unit]:
    pieces: list[tuple[str, bool]] = []
    for paragraph in re.split(r"\n\s*\n", text):
        sents = [s.strip() for s in SENTENCE_END.split(paragraph.strip()) if s.strip()]
        pieces += [(s, i == 0) for i, s in enumerate(sents)]
    if not pieces:
        return []
    encodings = tokenizer.encode_batch([p for p, _ in pieces], add_special_tokens=False)
    units: list[_Unit] = []
    for (piece, starts), enc in zip(pieces, encodings, strict=True):
        if len(enc.ids) <= max_tokens:
            units.append(_Unit(piece, len(enc.ids), starts))
            continue
        for i, window in enumerate(_windows(piece, enc.offsets, max_tokens, overlap)):
            units.append(_Unit(window, max_tokens, starts and i == 0))  # recounted at the end
    return units


def _join(units: Sequence[_Unit]) -> str:
    out = ""
    for i, u in enumerate(units):
        out += ("\n\n" if u.paragraph_start else " ") + u.text if i else u.text
    return out


def chunk_sections(
    sections: Sequence[Section],
    tokenizer: Tokenizer,
    *,
    chunk_tokens: int = 160,
    overlap_tokens: int = 24,
) -> tuple[list[Chunk], int]:
    """-> (chunks in reading order, how many duplicates were dropped)."""
    if not 0 <= overlap_tokens < chunk_tokens:
        raise ValueError(
            f"need 0 <= overlap_tokens ({overlap_tokens}) < chunk_tokens ({chunk_tokens})"
        )
    chunks: list[Chunk] = []
    for section in sections:
        units = _units(tokenizer, section.text, chunk_tokens, overlap_tokens)
        current: list[_Unit] = []
        size = 0
        for unit in units:
            if current and size + unit.tokens > chunk_tokens:
                chunks.append(Chunk(_join(current), size, section.heading, section.page))
                # Carry the last sentences (up to overlap_tokens) into the next chunk, unless
                # they and this unit would not fit together.
                carried: list[_Unit] = []
                for prev in reversed(current):
                    if sum(u.tokens for u in carried) + prev.tokens > overlap_tokens:
                        break
                    carried.insert(0, prev)
                if sum(u.tokens for u in carried) + unit.tokens > chunk_tokens:
                    carried = []
                current, size = carried, sum(u.tokens for u in carried)
            current.append(unit)
            size += unit.tokens
        if current:
            chunks.append(Chunk(_join(current), size, section.heading, section.page))
    seen: set[str] = set()
    unique = []
    for c in chunks:
        if c.key() not in seen:
            seen.add(c.key())
            unique.append(c)
    # Token counts of the joined text: packing summed per-sentence counts, which a tokenizer
    # that merges across spaces can exceed by a token or two.
    counts = count_tokens(tokenizer, [c.text for c in unique])
    unique = [Chunk(c.text, n, c.heading, c.page) for c, n in zip(unique, counts, strict=True)]
    return unique, len(chunks) - len(unique)
