"""What every figure of scripts/plots.py shares: reading the pipeline's files (a missing one
skips the figure), pyplot set up for files rather than a display, and the saved PNG's size."""

import json
from pathlib import Path
from typing import Any

DPI = 110  # with the figure sizes of plots_*.py, every PNG stays well under 100 KB


class MissingInputError(Exception):
    """An input file is not there: the figure is skipped, not failed."""


def need(path: Path) -> Path:
    if not path.is_file():
        raise MissingInputError(f"{path} not found (`dvc repro` or `make bench` writes it)")
    return path


def read_json(path: Path) -> Any:
    return json.loads(need(path).read_text())


def pyplot() -> Any:
    # Imported here so `--help` stays fast, and Agg chosen before pyplot so no display is needed.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def save(fig: Any, out: Path) -> None:
    fig.savefig(out, dpi=DPI, bbox_inches="tight")
    pyplot().close(fig)  # pyplot keeps every figure alive until it is closed
