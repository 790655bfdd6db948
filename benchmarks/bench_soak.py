"""Soak: each service under 16 concurrent clients for 5 minutes, with a mix of valid and hostile
requests (megabyte strings, decompression bombs, nonsense JSON, absurd limits).

Reports, per service: answers by request kind and status, p50/p99 latency over everything, and
the process tree's RSS at the start and the end of the soak. A service passes when it answered
only designed statuses (2xx, 4xx, 429, 503: no 500, no dropped connection or timeout), every
valid request succeeded or was shed with 503, and RSS at the end is within 10% of the start.

    python benchmarks/bench_soak.py                 # the four services on tiny models, 5 min each
    python benchmarks/bench_soak.py --seconds 30 --services llm_chat

Services run on the tiny test models (`<project>.testing`), so what is measured is the serving
stack's robustness, not model speed. Writes reports/soak.json.
"""

import argparse
import asyncio
import base64
import io
import json
import sys
import tempfile
import zlib
from pathlib import Path

OUT = Path("reports/soak.json")
SERVICES = ("image_classifier", "semantic_search", "llm_chat", "rag_chatbot")
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


def calls_for(service: str, model: str) -> list:
    """The request mix; `model` is the id the service lists first in /v1/models."""
    from mlstack.loadtest import Call

    def not_json(path: str) -> Call:
        return Call(
            "hostile: not JSON",
            "POST",
            path,
            content=b"\x00\xff{",
            headers={"content-type": "application/json"},
        )

    if service == "image_classifier":
        from PIL import Image

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
    if service == "semantic_search":
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
    if service == "llm_chat":
        chat = {"model": model, "max_tokens": 16, "temperature": 0}
        ask = [{"role": "user", "content": "Where is Paris?"}]
        schema = {
            "type": "object",
            "required": ["city"],
            "additionalProperties": False,
            "properties": {"city": {"type": "string", "maxLength": 8}},
        }
        tool = {"type": "function", "function": {"name": "find", "parameters": schema}}
        deep: dict = {"type": "object"}
        for _ in range(100):
            deep = {"type": "object", "properties": {"a": deep}}
        return [
            Call("valid: chat", "POST", "/v1/chat/completions", json={**chat, "messages": ask}),
            Call(
                "valid: completion",
                "POST",
                "/v1/completions",
                json={**chat, "prompt": "The capital of France"},
            ),
            Call(
                "valid: json schema",
                "POST",
                "/v1/chat/completions",
                json={
                    **chat,
                    "max_tokens": 40,
                    "messages": ask,
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "c", "schema": schema},
                    },
                },
            ),
            Call(
                "valid: tool call",
                "POST",
                "/v1/chat/completions",
                json={
                    **chat,
                    "max_tokens": 40,
                    "messages": ask,
                    "tools": [tool],
                    "tool_choice": "required",
                    "parallel_tool_calls": False,
                },
            ),
            Call(
                "valid: logprobs, n=2",
                "POST",
                "/v1/chat/completions",
                json={**chat, "messages": ask, "n": 2, "logprobs": True, "top_logprobs": 2},
            ),
            Call("valid: tokenize", "POST", "/tokenize", json={"messages": ask, "tools": [tool]}),
            Call(
                "hostile: deep schema",
                "POST",
                "/v1/chat/completions",
                json={
                    **chat,
                    "messages": ask,
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "d", "schema": deep},
                    },
                },
            ),
            Call(
                "hostile: unknown field",
                "POST",
                "/v1/chat/completions",
                json={**chat, "messages": ask, "guided_json": schema},
            ),
            Call(
                "hostile: logit_bias past the vocabulary",
                "POST",
                "/v1/chat/completions",
                json={**chat, "messages": ask, "logit_bias": {"999999999": 5}},
            ),
            Call(
                "hostile: megabyte message",
                "POST",
                "/v1/chat/completions",
                json={**chat, "messages": [{"role": "user", "content": MEGABYTE}]},
            ),
            Call(
                "hostile: huge max_tokens",
                "POST",
                "/v1/chat/completions",
                json={
                    **chat,
                    "max_tokens": 10**12,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            ),
            Call(
                "hostile: no messages",
                "POST",
                "/v1/chat/completions",
                json={**chat, "messages": []},
            ),
            Call(
                "hostile: NUL",
                "POST",
                "/v1/chat/completions",
                json={**chat, "messages": [{"role": "user", "content": "\x00" * 1000}]},
            ),
            Call(
                "hostile: nested JSON",
                "POST",
                "/v1/chat/completions",
                content=NESTED,
                headers={"content-type": "application/json"},
            ),
            not_json("/v1/completions"),
        ]
    if service == "rag_chatbot":
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
    raise ValueError(service)


def verdict(report: dict) -> dict:
    """What the soak asks for: designed statuses only, valid requests served, RSS flat."""
    undesigned = {}
    for kind, counts in report["statuses"].items():
        for status, n in counts.items():
            designed = status.isdigit() and (int(status) < 500 or status == "503")
            if not designed or (kind.startswith("valid") and status not in {"200", "201", "503"}):
                undesigned[f"{kind}: {status}"] = n
    rss = report.get("rss_mb", {})
    growth = (rss["end"] - rss["start"]) / rss["start"] if rss.get("start") else None
    return {
        "undesigned": undesigned,
        "rss_growth": None if growth is None else round(growth, 3),
        "passed": not undesigned and growth is not None and growth <= 0.10,
    }


def soak(service: str, args: argparse.Namespace, scratch: Path) -> dict:
    import httpx

    from mlstack.loadtest import mixed_load, serve_process

    port = args.port + SERVICES.index(service)
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        f"{service}.testing",
        str(scratch / service),
        "--port",
        str(port),
        "--api-key",
        "soak-key",
    ]
    headers = {"Authorization": "Bearer soak-key"}
    with serve_process(cmd, {"PYTHONUNBUFFERED": "1"}, url, ready_s=600) as proc:
        model = httpx.get(f"{url}/v1/models", headers=headers).json()["data"][0]["id"]
        calls = calls_for(service, model)
        print(f"{service}: warming up", flush=True)
        asyncio.run(mixed_load(url, calls, clients=args.clients, seconds=10, headers=headers))
        print(f"{service}: soaking {args.seconds:.0f} s with {args.clients} clients", flush=True)
        report = asyncio.run(
            mixed_load(
                url,
                calls,
                clients=args.clients,
                seconds=args.seconds,
                headers=headers,
                pid=proc.pid,
                timeout_s=60,
            )
        )
    report["verdict"] = verdict(report)
    print(json.dumps({service: report}, indent=2), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--services", nargs="+", default=list(SERVICES), choices=SERVICES)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--port", type=int, default=8190)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        for service in args.services:
            results[service] = soak(service, args, Path(scratch))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(
                json.dumps(results, indent=2)
            )  # after each: a long run keeps its parts
    failed = [s for s in args.services if not results[s]["verdict"]["passed"]]
    print("soak:", "all passed" if not failed else f"failed: {', '.join(failed)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
