"""A sampled log of what a model saw and said, for drift reports.

Each process appends JSON lines to its own rotating file (`inference-<pid>.jsonl`, rotated at
`max_bytes`, `backup_count` kept), so several uvicorn workers never write to the same file.
Writing is a `logging` handler call: cheap enough to leave on.
"""

import json
import logging
import os
import random
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any


class InferenceLog:
    def __init__(
        self,
        directory: str | Path,
        *,
        sample_rate: float = 1.0,
        max_bytes: int = 20 * 1024 * 1024,
        backup_count: int = 5,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sample_rate = sample_rate
        self._logger = logging.getLogger(f"mlstack.inference.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        path = self.directory / f"inference-{os.getpid()}.jsonl"
        self._handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backup_count)
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger.addHandler(self._handler)

    def log(self, record: dict[str, Any]) -> bool:
        """Appends one record (with a timestamp) if sampled; returns whether it was written."""
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return False
        self._logger.info(json.dumps({"ts": time.time(), **record}, default=float))
        return True

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._handler.close()


def read_inference_log(
    directory: str | Path, since: float | None = None, *, include_shadow: bool = False
):
    """Every record under `directory` (rotated files included) as a pandas DataFrame. A shadow
    model's records (role "challenger") describe its answers, not the traffic, so drift checks
    never see them; `include_shadow` keeps them (the shadow report)."""
    import pandas as pd

    rows = []
    for path in sorted(Path(directory).glob("inference-*.jsonl*")):
        with path.open() as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    frame = pd.DataFrame(rows)
    if since is not None and not frame.empty:
        frame = frame[frame["ts"] >= since]
    if not include_shadow and "role" in frame.columns:
        frame = frame[frame["role"] != "challenger"]
    return frame.reset_index(drop=True)
