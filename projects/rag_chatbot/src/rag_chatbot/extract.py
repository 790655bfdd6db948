"""Files in, structured text out: PDF (with page numbers), Markdown, HTML and plain text become
`Section`s, each the text under one heading (and, for PDFs, on one page).

    sections = extract("guide.pdf", path.read_bytes())

Bad files raise `ExtractError` with a code the API turns into a clear 4xx.
"""

import io
import re
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

FORMATS = {
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".text": "text",
}
MEDIA_TYPES = {
    "application/pdf": "pdf",
    "text/markdown": "markdown",
    "text/html": "html",
    "text/plain": "text",
}


@dataclass(frozen=True)
class Section:
    text: str
    heading: str = ""  # the heading path, "Install > Linux"
    page: int | None = None  # 1-based, PDFs only


class ExtractError(ValueError):
    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code, self.status = code, status


def detect_format(filename: str, media_type: str | None = None) -> str:
    """By extension, else by the declared media type; anything else is refused (415)."""
    suffix = PurePath(filename).suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if media_type and media_type.split(";")[0].strip() in MEDIA_TYPES:
        return MEDIA_TYPES[media_type.split(";")[0].strip()]
    raise ExtractError(
        "unsupported_type",
        f"{filename!r} is not a supported type; send one of {', '.join(sorted(FORMATS))}",
        status=415,
    )


# How much markup a text format may carry around `max_chars` of text before it is refused
# unparsed: parsing costs ~1 s of CPU a megabyte (HTML ~2 s), so limits are checked first.
MARKUP_FACTOR = {"markdown": 2, "text": 1, "html": 10}


def extract(
    filename: str,
    data: bytes,
    *,
    media_type: str | None = None,
    max_pages: int = 1000,
    timeout_s: float | None = None,
    max_chars: int | None = None,
) -> tuple[str, list[Section]]:
    """-> (title, sections). The title is the document's own (PDF metadata, `<title>`, first
    heading) or the file name. `timeout_s` bounds PDF text extraction (checked between pages);
    `max_chars` refuses a text file whose size alone puts its text over the limit."""
    kind = detect_format(filename, media_type)
    if kind == "pdf":
        title, sections = _pdf(data, max_pages, timeout_s)
    else:
        text = _decode(data)
        if max_chars is not None and len(text) > max_chars * MARKUP_FACTOR[kind]:
            raise ExtractError(
                "document_too_long",
                f"the file has {len(text)} characters, over "
                f"the limit of {max_chars} characters of text; split it",
                status=413,
            )
        title, sections = {"markdown": _markdown, "html": _html, "text": _text}[kind](text)
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise ExtractError(
            "no_text", f"{filename!r} has no extractable text (a scanned PDF needs OCR first)"
        )
    return title or PurePath(filename).stem, sections


def _decode(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise ExtractError("binary_file", "the file is binary, not text", status=415)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ExtractError(
            "bad_encoding", f"text files must be UTF-8 ({e.reason} at byte {e.start})"
        ) from e


def _clean(text: str) -> str:
    """Joins words hyphenated across lines, reflows lines within a paragraph (wrapped Markdown,
    PDF lines) and collapses runs of spaces; paragraph breaks stay."""
    text = text.replace("\x00", "")  # a NUL past the binary sniff; generators refuse it
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", text)
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r"\n\s*\n\s*", "\n\n", text)
    text = re.sub(r"(?<!\n) ?\n ?(?!\n)", " ", text)
    return re.sub(r" *\n\n *", "\n\n", text).strip()


def _pdf(data: bytes, max_pages: int, timeout_s: float | None) -> tuple[str, list[Section]]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    if b"%PDF-" not in data[:1024]:
        raise ExtractError("corrupt_file", "not a PDF: no %PDF- header in its first 1 KiB")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and reader.decrypt("") == 0:  # an owner password alone is fine
            raise ExtractError(
                "encrypted_pdf",
                "the PDF is password-protected; remove the password and upload it again",
            )
        if len(reader.pages) > max_pages:
            raise ExtractError(
                "too_many_pages",
                f"the PDF has {len(reader.pages)} pages, over the limit of {max_pages}",
                status=413,
            )
        title = str((reader.metadata or {}).get("/Title") or "").strip()
        deadline = time.monotonic() + timeout_s if timeout_s else None
        pages = []
        for n, page in enumerate(reader.pages, start=1):
            # A crafted content stream can take seconds a page: stop at the deadline.
            if deadline is not None and time.monotonic() > deadline:
                raise ExtractError(
                    "parse_timeout",
                    f"text extraction passed its {timeout_s:g} s "
                    f"limit at page {n} of {len(reader.pages)}",
                )
            pages.append(_clean(page.extract_text() or ""))
    except ExtractError:
        raise
    except FileNotDecryptedError as e:
        raise ExtractError("encrypted_pdf", f"the PDF is encrypted: {e}") from e
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as e:
        raise ExtractError("corrupt_file", f"the PDF cannot be read: {e}") from e
    return title, [Section(text, page=i) for i, text in enumerate(pages, start=1)]


HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def _markdown(text: str) -> tuple[str, list[Section]]:
    """ATX (`# x`) and setext (`x` over `===`/`---`) headings; none are read inside code fences."""
    lines = text.splitlines()
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    fenced = False

    def flush() -> None:
        if body:
            sections.append(Section(_clean("\n".join(body)), " > ".join(t for _, t in path)))
            body.clear()

    def open_heading(level: int, title: str) -> None:
        flush()
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title.strip()))

    for i, line in enumerate(lines):
        if FENCE.match(line):
            fenced = not fenced
        if not fenced and (m := HEADING.match(line)):
            open_heading(len(m.group(1)), m.group(2))
        elif (
            not fenced
            and body
            and body[-1].strip()
            and re.fullmatch(r"\s*(=+|-+)\s*", line)
            and (i == 0 or lines[i - 1].strip())
        ):
            title = body.pop()
            open_heading(1 if "=" in line else 2, title)
        else:
            body.append(line)
    flush()
    title = next((t for level, t in _headings(sections) if level == 1), "")
    return title, sections


def _headings(sections: list[Section]):
    for s in sections:
        if s.heading:
            yield s.heading.count(" > ") + 1, s.heading.split(" > ")[-1]


class _HTMLSections(HTMLParser):
    """Text under each h1-h6, skipping script, style and page chrome (nav, header, footer)."""

    SKIP = {"script", "style", "noscript", "nav", "footer", "header", "aside", "template", "svg"}
    BLOCK = {
        "p",
        "div",
        "li",
        "br",
        "tr",
        "section",
        "article",
        "pre",
        "blockquote",
        "dd",
        "dt",
        "table",
        "ul",
        "ol",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.path: list[tuple[int, str]] = []
        self.body: list[str] = []
        self.heading: list[str] | None = None
        self.level = 0
        self.skipping = 0
        self.title = ""
        self.in_title = False

    def handle_starttag(self, tag, attrs) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag == "title":
            self.in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.heading, self.level = [], int(tag[1])
        elif tag in self.BLOCK:
            self.body.append("\n\n" if tag in {"p", "div", "section", "article"} else "\n")

    def handle_endtag(self, tag) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag == "title":
            self.in_title = False
        elif re.fullmatch(r"h[1-6]", tag) and self.heading is not None:
            while self.path and self.path[-1][0] >= self.level:
                self.path.pop()
            self.path.append((self.level, " ".join("".join(self.heading).split())))
            self.heading = None

    def handle_data(self, data) -> None:
        if self.skipping:
            return
        if self.in_title:
            self.title += data
        elif self.heading is not None:
            self.heading.append(data)
        else:
            self.body.append(data)

    def _flush(self) -> None:
        text = _clean("".join(self.body))
        if text:
            self.sections.append(Section(text, " > ".join(t for _, t in self.path)))
        self.body = []

    def close(self) -> None:
        super().close()
        self._flush()


def _html(text: str) -> tuple[str, list[Section]]:
    parser = _HTMLSections()
    parser.feed(text)
    parser.close()
    title = " ".join(parser.title.split()) or next(
        (t for level, t in _headings(parser.sections) if level == 1), ""
    )
    return title, parser.sections


def _text(text: str) -> tuple[str, list[Section]]:
    return "", [Section(_clean(text))]
