"""API keys: several at once (so a key can be rotated without downtime), from the environment
and/or a file with one key per line (a mounted Kubernetes Secret), compared in constant time.

A key file that is named but missing or empty is an error at start-up, never an open API.
The file is re-read when it changes (Kubernetes swaps a mounted Secret in place), at most once
a second, so adding the new key and then removing the old one needs no restart.
"""

import contextlib
import hmac
import threading
import time
from pathlib import Path


def _parse(text: str) -> list[bytes]:
    lines = (line.strip() for line in text.splitlines())
    return [line.encode() for line in lines if line and not line.startswith("#")]


class ApiKeys:
    def __init__(self, keys: str | None = None, file: Path | None = None) -> None:
        self._env = [k.strip().encode() for k in (keys or "").split(",") if k.strip()]
        self._file = file
        self._file_keys: list[bytes] = []
        self._mtime: float | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        if file is not None:
            self._reload()
            if not self._file_keys:
                raise ValueError(f"API key file {file} holds no key")

    @property
    def enabled(self) -> bool:
        return bool(self._env) or self._file is not None

    def _reload(self) -> None:
        mtime = self._file.stat().st_mtime  # missing at start-up: FileNotFoundError, on purpose
        if mtime != self._mtime:
            self._file_keys, self._mtime = _parse(self._file.read_text("utf-8")), mtime

    def _current(self) -> list[bytes]:
        if self._file is not None and time.monotonic() - self._checked > 1.0:
            with self._lock:
                self._checked = time.monotonic()
                # mid-swap or briefly gone: keep the keys we had, never open up
                with contextlib.suppress(OSError):
                    self._reload()
        return self._env + self._file_keys

    def matches(self, token: str) -> bool:
        """True when `token` equals any key. Every key is compared (no early exit), each with
        `hmac.compare_digest`, so timing does not tell which prefix or key came close."""
        presented = token.encode()
        found = False
        for key in self._current():
            found |= hmac.compare_digest(presented, key)
        return found
