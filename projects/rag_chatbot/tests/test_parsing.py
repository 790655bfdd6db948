"""Parsing in a child process: a deadline that holds even inside one slow call, a memory cap, and
the parser's own refusals passed through."""

import os
import time
from pathlib import Path

import pytest

from rag_chatbot.extract import ExtractError
from rag_chatbot.parsing import extract_isolated

from .conftest import make_pdf


def test_a_file_parses_as_in_process():
    pdf = make_pdf(["Cats purr.", "Cats sleep."])
    t0 = time.perf_counter()
    _, sections = extract_isolated("cats.pdf", pdf, timeout_s=10, memory_mb=512)
    assert time.perf_counter() - t0 < 3.0  # an interpreter start and pypdf's import: ~0.8 s
    assert [(s.text, s.page) for s in sections] == [("Cats purr.", 1), ("Cats sleep.", 2)]


def test_a_parse_past_its_deadline_is_killed_in_time():
    """1 MB of `<p>` takes the HTML parser ~2 s in one call: no check between pages could stop
    it, the child is killed at the deadline."""
    t0 = time.perf_counter()
    with pytest.raises(ExtractError) as err:
        extract_isolated("tags.html", b"<p>" * 333_333, timeout_s=0.3, memory_mb=None)
    assert err.value.code == "parse_timeout" and err.value.status == 422
    assert time.perf_counter() - t0 < 1.0


def test_a_parse_over_its_memory_cap_is_a_413_and_the_service_is_untouched():
    before = _rss_mb()
    with pytest.raises(ExtractError) as err:  # 15 M lines: ~1 GB of Python strings
        extract_isolated("lines.md", b"a\n" * 15_000_000, timeout_s=60, memory_mb=256)
    assert (err.value.code, err.value.status) == ("parse_memory", 413)
    assert _rss_mb() - before < 100


def test_the_parsers_own_refusals_come_through():
    with pytest.raises(ExtractError) as err:
        extract_isolated("secret.pdf", make_pdf(["x"], password="pw"), timeout_s=10, memory_mb=512)
    assert (err.value.code, err.value.status) == ("encrypted_pdf", 422)


def _rss_mb() -> float:
    status = Path(f"/proc/{os.getpid()}/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
