"""Every format in, structure kept; every bad file refused with its own code."""

import pytest

from rag_chatbot.extract import ExtractError, extract

from .conftest import ZEBRA, make_pdf


def test_pdf_keeps_page_numbers_and_title():
    data = make_pdf(
        ["Zebras have stripes.", "Lions hunt at night.", "Giraffes are tall."],
        title="Savanna notes",
    )
    title, sections = extract("notes.pdf", data)
    assert title == "Savanna notes"
    assert [s.page for s in sections] == [1, 2, 3]
    assert "Lions hunt at night" in sections[1].text


def test_pdf_blank_pages_are_dropped_but_numbering_holds():
    _, sections = extract("x.pdf", make_pdf(["First page text.", "", "Third page text."]))
    assert [s.page for s in sections] == [1, 3]


def test_markdown_sections_follow_the_heading_path():
    title, sections = extract("zebra.md", ZEBRA.encode())
    assert title == "Zebra field guide"
    headings = [s.heading for s in sections]
    assert headings == [
        "Zebra field guide",
        "Zebra field guide > Migration",
        "Zebra field guide > Diet",
    ]
    assert "250,000 zebras" in sections[1].text


def test_markdown_ignores_headings_in_code_and_reads_setext():
    text = "Intro\n=====\n\nSome text.\n\n```\n# not a heading\n```\n\nPart two\n--------\n\nMore."
    _, sections = extract("a.md", text.encode())
    assert [s.heading for s in sections] == ["Intro", "Intro > Part two"]
    assert "# not a heading" in sections[0].text


def test_html_skips_chrome_and_scripts():
    page = """<html><head><title>Zebra page</title><script>var x = "secret";</script></head>
    <body><nav>Home | About</nav><h1>Zebras</h1><p>Zebras have stripes.</p>
    <h2>Diet</h2><p>They eat grass &amp; shrubs.</p><footer>(c) 2026</footer></body></html>"""
    title, sections = extract("z.html", page.encode())
    assert title == "Zebra page"
    assert [s.heading for s in sections] == ["Zebras", "Zebras > Diet"]
    joined = " ".join(s.text for s in sections)
    assert "grass & shrubs" in joined
    assert "secret" not in joined and "Home" not in joined and "(c)" not in joined


def test_plain_text_and_hyphenation():
    title, sections = extract("notes.txt", b"A long sen-\ntence here.\n\n\nSecond paragraph.")
    assert title == "notes"
    assert sections[0].text == "A long sentence here.\n\nSecond paragraph."


@pytest.mark.parametrize(
    ("filename", "data", "code", "status"),
    [
        ("secret.pdf", make_pdf(["Hidden text."], password="pw"), "encrypted_pdf", 422),
        ("broken.pdf", make_pdf(["Some text."])[:300], "corrupt_file", 422),
        ("fake.pdf", b"hello, I am not a PDF", "corrupt_file", 422),
        ("report.docx", b"PK\x03\x04 zip bytes", "unsupported_type", 415),
        ("photo.png", b"\x89PNG\r\n\x1a\n", "unsupported_type", 415),
        ("data.txt", b"\x00\x01\x02binary", "binary_file", 415),
        ("latin1.txt", "café".encode("latin-1"), "bad_encoding", 422),
        ("empty.md", b"   \n\n ", "no_text", 422),
        ("scan.pdf", make_pdf(["", ""]), "no_text", 422),
    ],
)
def test_bad_files_are_refused_with_a_code(filename, data, code, status):
    with pytest.raises(ExtractError) as err:
        extract(filename, data)
    assert (err.value.code, err.value.status) == (code, status)


def test_page_limit():
    with pytest.raises(ExtractError) as err:
        extract("big.pdf", make_pdf(["a page"] * 3), max_pages=2)
    assert (err.value.code, err.value.status) == ("too_many_pages", 413)


def test_media_type_is_used_when_the_name_has_no_extension():
    _, sections = extract("README", b"# Title\n\nBody text here.", media_type="text/markdown")
    assert sections[0].heading == "Title"
