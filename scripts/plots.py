"""`make plots`: the README's figures, drawn only from files the DVC pipeline writes under
reports/ (most of them committed JSON). A figure whose input is missing is skipped with the
reason printed, so a partial checkout still renders the rest.

    python scripts/plots.py --out docs/img
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from plots_classifier import classifier_per_class, classifier_reliability
from plots_common import MissingInputError
from plots_llm import llm_streams
from plots_retrieval import rag_natural, search_index, search_modes

REPORTS = Path("reports")


PLOTS: dict[str, Callable[[Path, Path], None]] = {
    "classifier_per_class": classifier_per_class,
    "classifier_reliability": classifier_reliability,
    "search_modes": search_modes,
    "search_index": search_index,
    "llm_streams": llm_streams,
    "rag_natural": rag_natural,
}


def render(reports: Path, out_dir: Path, only: list[str] | None = None) -> dict[str, str]:
    """Renders each figure to `out_dir/<name>.png`; returns name -> "ok" or the skip reason."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, plot in PLOTS.items():
        if only and name not in only:
            continue
        try:
            plot(reports, out_dir / f"{name}.png")
            results[name] = "ok"
        except MissingInputError as why:
            results[name] = f"skipped: {why}"
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=REPORTS, help="the pipeline's reports/")
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="where PNGs go")
    parser.add_argument("--only", nargs="*", choices=sorted(PLOTS), help="these figures only")
    args = parser.parse_args(argv)
    for name, status in render(args.reports, args.out, args.only).items():
        where = args.out / f"{name}.png"
        print(
            f"{name}: {where} ({where.stat().st_size // 1024} KB)"
            if status == "ok"
            else f"{name}: {status}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
