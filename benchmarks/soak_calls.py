"""bench_soak.py's request mixes, valid and hostile, for the image classifier, semantic search
and the RAG chatbot (the LLM chat service's, the longest, in soak_llm_calls.py), and the hostile
bodies they share."""

import base64
import io
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotation only: each function imports Call when it builds a mix
    from mlstack.loadtest import Call

MEGABYTE = "x" * 1_000_000
NESTED = b"[" * 50_000 + b"]" * 50_000


def png(width: int, height: int, pixels: bytes | None = None) -> bytes:
    """A PNG, written by hand so a bomb (a huge canvas in a few KB) needs no big buffer here."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    if pixels is None:  # one zero row repeated: compresses ~1000:1
        compressor = zlib.compressobj(9)
        row = b"\x00" * (width + 1)
        pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def not_json(path: str) -> "Call":
    """A body sent as application/json that no JSON parser accepts."""
    from mlstack.loadtest import Call

    return Call(
        "hostile: not JSON",
        "POST",
        path,
        content=b"\x00\xff{",
        headers={"content-type": "application/json"},
    )


def classifier_calls() -> list:
    from PIL import Image

    from mlstack.loadtest import Call

    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, "PNG")
    digit = buffer.getvalue()
    b64 = base64.b64encode(digit).decode()
    bomb = png(20_000, 20_000)
    return [
        Call(
            "valid: multipart",
            "POST",
            "/v1/classify",
            files={"file": ("d.png", digit, "image/png")},
        ),
        Call("valid: json", "POST", "/v1/classify", json={"images": [b64] * 4}),
        Call(
            "hostile: PNG bomb",
            "POST",
            "/v1/classify",
            files={"file": ("b.png", bomb, "image/png")},
        ),
        Call(
            "hostile: 16 bombs",
            "POST",
            "/v1/classify",
            json={"images": [base64.b64encode(bomb).decode()] * 16},
        ),
        Call(
            "hostile: not an image",
            "POST",
            "/v1/classify",
            files={"file": ("x.png", b"\x00" * 5000, "image/png")},
        ),
        Call("hostile: megabyte base64", "POST", "/v1/classify", json={"image": MEGABYTE}),
        Call(
            "hostile: nested JSON",
            "POST",
            "/v1/classify",
            content=NESTED,
            headers={"content-type": "application/json"},
        ),
        not_json("/v1/classify"),
    ]


def search_calls(model: str) -> list:
    """`model`: the id the service lists first in /v1/models."""
    from mlstack.loadtest import Call

    return [
        Call(
            "valid: search",
            "POST",
            "/v1/search",
            json={"query": "the history of music", "k": 5},
        ),
        Call(
            "valid: embeddings",
            "POST",
            "/v1/embeddings",
            json={"input": ["a sentence", "another"], "model": model},
        ),
        Call(
            "valid: upsert",
            "POST",
            "/v1/documents",
            json={"documents": [{"id": "soak", "text": "soak test text", "title": "Soak"}]},
        ),
        Call("hostile: megabyte query", "POST", "/v1/search", json={"query": MEGABYTE}),
        Call("hostile: huge k", "POST", "/v1/search", json={"query": "music", "k": 10**12}),
        Call("hostile: whitespace", "POST", "/v1/search", json={"query": " \t\n "}),
        Call(
            "hostile: megabyte embeddings",
            "POST",
            "/v1/embeddings",
            json={"input": [MEGABYTE[:100_000]] * 9},
        ),
        Call(
            "hostile: nested JSON",
            "POST",
            "/v1/search",
            content=NESTED,
            headers={"content-type": "application/json"},
        ),
        not_json("/v1/embeddings"),
    ]


def rag_calls() -> list:
    from mlstack.loadtest import Call

    return [
        Call("valid: retrieve", "POST", "/v1/retrieve", json={"query": "Where is Paris?"}),
        Call(
            "valid: chat",
            "POST",
            "/v1/chat",
            json={"messages": [{"role": "user", "content": "Who painted the Mona Lisa?"}]},
        ),
        Call(
            "valid: upload",
            "POST",
            "/v1/documents",
            files={
                "file": (
                    "soak.md",
                    b"# Soak\n\nThe soak test writes this file.",
                    "text/markdown",
                )
            },
        ),
        Call(
            "hostile: megabyte question",
            "POST",
            "/v1/chat",
            json={"messages": [{"role": "user", "content": MEGABYTE}]},
        ),
        Call("hostile: huge k", "POST", "/v1/retrieve", json={"query": "Paris", "k": 10**12}),
        Call(
            "hostile: corrupt PDF",
            "POST",
            "/v1/documents",
            files={"file": ("x.pdf", b"%PDF-1.7\n" + b"\x00" * 4000, "application/pdf")},
        ),
        Call(
            "hostile: binary as text",
            "POST",
            "/v1/documents",
            files={"file": ("x.txt", bytes(range(256)) * 40, "text/plain")},
        ),
        Call(
            "hostile: nested JSON",
            "POST",
            "/v1/chat",
            content=NESTED,
            headers={"content-type": "application/json"},
        ),
        not_json("/v1/retrieve"),
    ]
