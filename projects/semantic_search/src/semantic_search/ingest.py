"""Documents from JSONL, CSV or a folder of Markdown/text files, validated, in batches."""

import csv
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from semantic_search.documents import Document

TEXT_SUFFIXES = {".md", ".markdown", ".txt"}
FIELDS = set(Document.model_fields)


class IngestError(ValueError):
    """A record that cannot become a Document; says which file and line."""


def _record(raw: dict, where: str) -> Document:
    # Columns that are not Document fields become metadata, so CSV/JSONL extras are kept.
    known = {k: v for k, v in raw.items() if k in FIELDS and v not in (None, "")}
    extra = {k: v for k, v in raw.items() if k not in FIELDS and v not in (None, "")}
    known["metadata"] = {**known.get("metadata", {}), **extra}
    try:
        return Document.model_validate(known)
    except ValidationError as e:
        err = e.errors()[0]
        raise IngestError(f"{where}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def read_jsonl(path: Path) -> Iterator[Document]:
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if line.strip():
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as e:
                    raise IngestError(f"{path}:{line_no}: invalid JSON ({e.msg})") from None
                yield _record(raw, f"{path}:{line_no}")


def read_csv(path: Path) -> Iterator[Document]:
    with path.open(encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.DictReader(f), start=2):
            yield _record(row, f"{path}:{line_no}")


def read_text_folder(folder: Path, *, source: str | None = None) -> Iterator[Document]:
    """One document per file; the id is the relative path, the title the first Markdown heading
    (else the file name), the date the file's modification day."""
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES):
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if not text:
            continue
        heading = next(
            (ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), ""
        )
        rel = path.relative_to(folder).as_posix()
        yield _record(
            {
                "id": rel,
                "text": text,
                "title": heading or path.stem,
                "source": source or rel,
                "date": dt.date.fromtimestamp(path.stat().st_mtime).isoformat(),
            },
            str(path),
        )


def read_documents(path: Path) -> Iterator[Document]:
    if path.is_dir():
        return read_text_folder(path)
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    if path.suffix == ".csv":
        return read_csv(path)
    raise IngestError(f"{path}: expected a .jsonl or .csv file or a folder of .md/.txt files")
