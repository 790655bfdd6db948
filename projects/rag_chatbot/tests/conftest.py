"""Fixtures: the tiny encoder of `semantic_search.testing`, PDFs written with fpdf2, the fake
OpenAI-compatible generator of `rag_chatbot.testing` on a real port, and the document registry
on each of its databases (a throwaway Postgres server for the session)."""

from pathlib import Path

import pytest

from mlstack.testing import live_server
from mlstack.testing_postgres import postgres_database, postgres_server
from rag_chatbot.testing import FakeLLM
from semantic_search.testing import build_tiny_encoder

ZEBRA = """# Zebra field guide

Zebras are African equines with distinctive black-and-white striped coats. Their stripes come
in different patterns, unique to each individual.

## Migration

Every year, around 250,000 zebras migrate across the Serengeti with the wildebeest. The journey
covers about 500 kilometres and follows the rains.

## Diet

Zebras are grazers and eat mostly grasses, but also shrubs, herbs, twigs, leaves and bark.
"""


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


def make_pdf(pages: list[str], *, title: str | None = None, password: str | None = None) -> bytes:
    """A real PDF, one page per text (fpdf2), optionally AES-encrypted with a user password."""
    import io

    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    data = bytes(pdf.output())
    if password is None:
        return data
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=password, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture(scope="session")
def fake_llm():
    llm = FakeLLM()
    with live_server(llm.app(), wait_ready=False) as url:
        llm.url = url + "/v1"
        yield llm


@pytest.fixture
def reset_llm(fake_llm):
    fake_llm.reply, fake_llm.status, fake_llm.fail_midway = None, 200, False
    fake_llm.hyde_reply = ""
    fake_llm.delay_s = 0.0
    fake_llm.requests.clear()
    return fake_llm


@pytest.fixture(scope="session")
def postgres_url():
    """A Postgres server for the session (skips where Debian's `postgresql` is not installed)."""
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_db(postgres_url) -> str:
    """The URL of a new, empty database on it: one per test."""
    return postgres_database(postgres_url)


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request) -> str | None:
    """The registry a parametrized test runs on: None, the default sqlite file beside the
    uploads, or a fresh Postgres database."""
    return request.getfixturevalue("postgres_db") if request.param == "postgres" else None
