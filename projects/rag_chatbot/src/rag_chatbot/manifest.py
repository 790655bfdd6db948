"""The corpus library's record of its documents: a JSON file beside the index (doc id -> its
`DocumentInfo` as a dict), read through a cache that follows the file's changes, and replaced
atomically (write to a temporary file, then rename), so readers see the old or the new one."""

import json
import os
from pathlib import Path


class Manifest:
    def __init__(self, path: Path | None) -> None:
        # No path: the service's library, whose registry is registry.py; it has nothing to record.
        self.path = path
        self._cache: tuple[tuple[int, int], dict[str, dict]] | None = None

    def read(self) -> dict[str, dict]:
        if self.path is None:
            return {}
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (stat.st_mtime_ns, stat.st_size)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, json.loads(self.path.read_text(encoding="utf-8")))
        return self._cache[1]

    def write(self, manifest: dict[str, dict]) -> None:
        if self.path is None:
            raise RuntimeError("this library has no manifest: write through docstore")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.path)  # atomic: readers see the old or the new file
