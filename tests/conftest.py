import shutil
import sys
from pathlib import Path

import pytest


def need(binary: str) -> str:
    """The path of a tool (on PATH or in this virtual environment), or a skip saying why not."""
    path = shutil.which(binary) or shutil.which(binary, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip(f"{binary} is not installed (.ci/run installs it from Debian)")
    return path
