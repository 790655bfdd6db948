"""Parsing an upload in a child process, with a wall-clock deadline and a memory cap.

pypdf and the HTML/Markdown parsers are pure Python: in a thread they hold the GIL (slowing every
other request), a crafted page can take any time on its own, and a decompression bomb can take
any memory. A child from a fork server (forked from a small process with the parsers imported:
milliseconds, not an interpreter start) is killed at the deadline and has its address space
capped, so neither can hurt the service.

    title, sections = extract_isolated("a.pdf", data, timeout_s=20, memory_mb=1024, max_pages=500)
"""

import multiprocessing as mp
import resource
from multiprocessing.connection import Connection
from typing import Any

from rag_chatbot.extract import ExtractError, Section, extract

_context: Any = None


def _fork_server() -> Any:
    global _context
    if _context is None:
        context = mp.get_context("forkserver")
        # "__main__" once here, or every child re-runs the main script (pytest's: ~1 s a child).
        context.set_forkserver_preload(["__main__", "rag_chatbot.extract", "pypdf"])
        _context = context
    return _context


def _child(conn: Connection, memory_bytes: int, filename: str, data: bytes, options: dict) -> None:
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        result: tuple[str, Any] = ("ok", extract(filename, data, **options))
    except ExtractError as e:
        result = ("refused", (e.code, str(e), e.status))
    except MemoryError:
        result = ("memory", None)
    except Exception as e:  # a parser bug on a strange file: the file's fault, said plainly
        result = ("failed", f"{type(e).__name__}: {e}")
    conn.send(result)
    conn.close()


def extract_isolated(filename: str, data: bytes, *, timeout_s: float, memory_mb: int | None,
                     **options: Any) -> tuple[str, list[Section]]:  # fmt: skip
    """`extract` in a child process; raises `ExtractError` for a file that is over a limit,
    takes longer than `timeout_s`, needs more than `memory_mb` or cannot be read."""
    context = _fork_server()
    receive, send = context.Pipe(duplex=False)
    memory = memory_mb * 2**20 if memory_mb else 0
    proc = context.Process(target=_child, args=(send, memory, filename, data,
                                                {**options, "timeout_s": timeout_s}))  # fmt: skip
    proc.start()
    send.close()
    try:
        if not receive.poll(timeout_s):
            raise ExtractError("parse_timeout", f"parsing the file took longer than its limit "
                               f"of {timeout_s:g} s")  # fmt: skip
        kind, payload = receive.recv()
    except EOFError:  # it died without a word: killed by the memory cap
        kind, payload = "memory", None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        receive.close()
    if kind == "ok":
        return payload
    if kind == "refused":
        code, message, status = payload
        raise ExtractError(code, message, status)
    if kind == "memory":
        raise ExtractError("parse_memory", f"parsing the file needed more than {memory_mb} MB of "
                           "memory (a decompression bomb?)", status=413)  # fmt: skip
    raise ExtractError("corrupt_file", f"the file cannot be parsed: {payload}")
