"""Parsing an upload in a child process, with a wall-clock deadline and a memory cap.

pypdf and the HTML/Markdown parsers are pure Python: in a thread they hold the GIL (slowing every
other request), a crafted page can take any time in one call, and a decompression bomb can take
any memory. A child interpreter (`python -m rag_chatbot.parsing`: ~0.1 s to start, ~0.5 s more
when it imports pypdf) is killed at the deadline and has its address space capped, so neither can
hurt the service. The file goes in on stdin; the sections come back as JSON (not pickle: the
child handles untrusted input, the parent must not execute what it sends).

    title, sections = extract_isolated("a.pdf", data, timeout_s=20, memory_mb=1024, max_pages=500)
"""

import json
import resource
import subprocess
import sys
from dataclasses import asdict
from typing import Any

from rag_chatbot.extract import ExtractError, Section, extract


def extract_isolated(
    filename: str, data: bytes, *, timeout_s: float, memory_mb: int | None, **options: Any
) -> tuple[str, list[Section]]:
    """`extract` in a child process; raises `ExtractError` for a file that is over a limit,
    takes longer than `timeout_s`, needs more than `memory_mb` or cannot be read."""
    request = json.dumps(
        {
            "filename": filename,
            "memory_mb": memory_mb,
            "options": {**options, "timeout_s": timeout_s},
        }
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rag_chatbot.parsing", request],
            input=data,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed it
        raise ExtractError(
            "parse_timeout", f"parsing the file took longer than its limit of {timeout_s:g} s"
        ) from None
    try:
        result = json.loads(done.stdout)
    except ValueError:  # it died without a word: killed (the memory cap) or crashed
        result = {
            "error": "memory" if done.returncode < 0 else "failed",
            "message": done.stderr.decode(errors="replace")[-300:],
        }
    if "sections" in result:
        return result["title"], [Section(**s) for s in result["sections"]]
    if result["error"] == "refused":
        raise ExtractError(result["code"], result["message"], result["status"])
    if result["error"] == "memory":
        raise ExtractError(
            "parse_memory",
            f"parsing the file needed more than {memory_mb} MB of memory (a decompression bomb?)",
            status=413,
        )
    raise ExtractError("corrupt_file", f"the file cannot be parsed: {result['message']}")


def _child() -> None:
    request = json.loads(sys.argv[1])
    if request["memory_mb"]:
        cap = request["memory_mb"] * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    data = sys.stdin.buffer.read()
    try:
        title, sections = extract(request["filename"], data, **request["options"])
        result: dict[str, Any] = {"title": title, "sections": [asdict(s) for s in sections]}
    except ExtractError as e:
        result = {"error": "refused", "code": e.code, "message": str(e), "status": e.status}
    except MemoryError:
        result = {"error": "memory"}
    except Exception as e:  # a parser bug on a strange file: the file's fault, said plainly
        result = {"error": "failed", "message": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    _child()
