"""A JSON body that repeats a key in one object is refused (400 naming it): Python's json and
pydantic keep the last value, so `{"model": "a", "model": "b"}` was served as "b" without a
word, and a proxy or logger that keeps the first saw another request than the one served.
Clients (the OpenAI SDKs included) never send one. The check runs on every JSON body, once
FastAPI has parsed it: a parse that builds nothing, about 70% of the time of FastAPI's own
(measured on 2 and 10 MB of small objects); the key's location is found only when one repeats."""

import json
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from mlstack.serve.errors import APIError

_INLINE_BYTES = 64 * 1024  # larger bodies are checked in a thread, off the event loop
# Finding where a repeat is walks the whole body in Python (2 MB of small objects: 0.3 s,
# 10 MB: 2.4 s), so a larger body's error names the key alone.
_LOCATE_BYTES = 1024 * 1024


class _RepeatedKeyError(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _check(pairs: list[tuple[str, Any]]) -> None:
    # returns None: the objects themselves are not wanted, which is what makes the check cheap
    if len(pairs) > 1 and len({key for key, _ in pairs}) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKeyError(key)
            seen.add(key)


def repeated_key(raw: bytes) -> str | None:
    """Where the JSON `raw` first repeats a key in one object: the key's dotted path, as
    validation errors name fields (the key alone in a body over 1 MB); None when no key repeats
    or `raw` is not JSON (for the route's parser to report)."""
    try:
        json.loads(raw, object_pairs_hook=_check)
        return None
    except _RepeatedKeyError as repeat:
        key = repeat.key
    except (ValueError, RecursionError):
        return None
    if len(raw) > _LOCATE_BYTES:
        return key
    # objects as lists of (key, value) pairs, repeats kept; arrays hold no tuples. Each pushed
    # child keeps the index of its parent's link, not its own path: a path string per child
    # cost width x depth (a 249 KB body: 3 GB and 3.5 s); the path is spelled only for a repeat.
    links: list[tuple[int, str]] = [(-1, "")]
    stack: list[tuple[Any, int]] = [(json.loads(raw, object_pairs_hook=list), 0)]
    while stack:
        node, link = stack.pop()
        if node and type(node[0]) is tuple:
            seen: set[str] = set()
            for name, _ in node:
                if name in seen:
                    return _spell(links, link) + name
                seen.add(name)
            children: Any = node
        else:
            children = enumerate(node)
        pushed = [(v, str(k)) for k, v in children if type(v) is list]
        for value, label in reversed(pushed):
            links.append((link, label))
            stack.append((value, len(links) - 1))
    return key


def _spell(links: list[tuple[int, str]], link: int) -> str:
    """The dotted path of the node at `link`, with a trailing dot ("" for the root)."""
    labels: list[str] = []
    while link > 0:
        link, label = links[link]
        labels.append(label + ".")
    return "".join(reversed(labels))


async def refuse_repeated_keys(request: Request) -> None:
    """A dependency of every route (create_app): a 400 naming the first repeated key."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return
    raw = await request.body()  # the bytes FastAPI read, not a second read
    if len(raw) > _INLINE_BYTES:
        where = await run_in_threadpool(repeated_key, raw)
    else:
        where = repeated_key(raw)
    if where is not None:
        raise APIError(
            400,
            "duplicate_key",
            f"{where}: the key appears more than once in one JSON object; send it once",
            param=where,
        )
