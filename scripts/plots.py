"""`make plots`: the README's figures, drawn only from files the DVC pipeline writes under
reports/ (most of them committed JSON). A figure whose input is missing is skipped with the
reason printed, so a partial checkout still renders the rest.

    python scripts/plots.py --out docs/img
"""

import argparse
import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPORTS = Path("reports")
DPI = 110  # with the figure sizes below, every PNG stays well under 100 KB


class MissingInputError(Exception):
    """An input file is not there: the figure is skipped, not failed."""


def _need(path: Path) -> Path:
    if not path.is_file():
        raise MissingInputError(f"{path} not found (`dvc repro` or `make bench` writes it)")
    return path


def _json(path: Path) -> Any:
    return json.loads(_need(path).read_text())


def _pyplot() -> Any:
    # Imported here so `--help` stays fast, and Agg chosen before pyplot so no display is needed.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _save(fig: Any, out: Path) -> None:
    fig.savefig(out, dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)  # pyplot keeps every figure alive until it is closed


def _classifiers(reports: Path) -> list[str]:
    names = sorted(p.parent.name for p in (reports / "image_classifier").glob("*/metrics.json"))
    if not names:
        raise MissingInputError(f"no {reports}/image_classifier/*/metrics.json")
    return names


def classifier_per_class(reports: Path, out: Path) -> None:
    """Per-class recall and precision of each trained model on the test split. The confusion
    matrix itself is a PNG the evaluate stage writes but git ignores; per_class.json is its
    committed summary (its diagonal over the row and column sums)."""
    plt = _pyplot()
    names = _classifiers(reports)
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.4), sharey=True)
    for ax, metric in zip(axes, ("recall", "precision"), strict=True):
        rows = []
        for name in names:
            per_class = _json(reports / "image_classifier" / name / "per_class.json")
            classes = sorted(per_class, key=int)
            rows.append([per_class[c][metric] for c in classes])
        image = ax.imshow(rows, vmin=0.8, vmax=1.0, cmap="viridis", aspect="auto")
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                ax.text(
                    j,
                    i,
                    f"{value:.2f}"[1:] if value < 1 else "1",
                    ha="center",
                    va="center",
                    color="white" if value < 0.9 else "black",
                    fontsize=7,
                )
        ax.set(
            xticks=range(len(classes)),
            xticklabels=classes,
            yticks=range(len(names)),
            yticklabels=names,
            xlabel="digit",
            title=f"test {metric} per class",
        )
        ax.grid(False)
    fig.colorbar(image, ax=axes, shrink=0.8)
    _save(fig, out)


def classifier_reliability(reports: Path, out: Path) -> None:
    """Reliability diagram: accuracy against confidence per bin, the diagonal being perfect
    calibration. From the evaluate stage's reliability.csv (a DVC plot, ignored by git)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    for name in _classifiers(reports):
        path = _need(reports / "image_classifier" / name / "reliability.csv")
        ece = _json(reports / "image_classifier" / name / "metrics.json")["ece"]
        with path.open() as f:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        ax.plot(
            [r["confidence"] for r in rows],
            [r["accuracy"] for r in rows],
            marker="o",
            markersize=3,
            label=f"{name} (ECE {ece:.3f})",
        )
    ax.set(
        xlabel="confidence (bin mean)",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1.05),
        title="Digits classifier calibration (test)",
    )
    ax.legend(loc="lower right", fontsize=7)
    _save(fig, out)


def search_modes(reports: Path, out: Path) -> None:
    """Known-item retrieval: recall@10 against latency per mode (ss_evaluate, k=10)."""
    plt = _pyplot()
    r = _json(reports / "semantic_search" / "retrieval.json")
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    for mode in ("dense", "bm25", "hybrid"):
        quality = r["systems"][f"{mode}_index"]
        latency = r["latency_ms"][mode]["total"]
        ax.errorbar(
            latency["p50"],
            quality["recall@10"],
            marker="o",
            capsize=3,
            xerr=[[0], [latency["p99"] - latency["p50"]]],
            label=mode,
        )
    ax.set(
        xlabel="latency with query encoding, p50 (bar to p99), ms",
        ylabel="recall@10",
        title=f"Semantic search, {r['queries']} known-item queries",
    )
    ax.legend(fontsize=7)
    _save(fig, out)


def search_index(reports: Path, out: Path) -> None:
    """Vector indexes: recall@10 against p50 latency, per corpus size (`make bench`)."""
    plt = _pyplot()
    indexes = _json(reports / "semantic_search" / "benchmark.json").get("indexes")
    # {"setup", "rows", "command"} since the benchmark records its setup; a bare list before
    rows = indexes.get("rows") if isinstance(indexes, dict) else indexes
    if not rows:
        raise MissingInputError(
            f"{reports}/semantic_search/benchmark.json has no 'indexes' section"
        )
    sizes = sorted({row["vectors"] for row in rows})
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.4), squeeze=False)
    for ax, size in zip(axes[0], sizes, strict=True):
        for row in (x for x in rows if x["vectors"] == size):
            ax.scatter(row["p50_ms"], row["recall@10"], s=18)
            name, _, rest = row["index"].partition(" (")  # its settings are in the README
            ax.annotate(
                name + (" + refine" if "refine" in rest else ""),
                (row["p50_ms"], row["recall@10"]),
                fontsize=6,
                textcoords="offset points",
                xytext=(3, 2),
            )
        ax.set(
            xscale="log",
            xlabel="query p50 (ms)",
            ylabel="recall@10 vs exact",
            title=f"{size:,} vectors"
            + (
                " (synthetic)"
                if any(x.get("synthetic_vectors") for x in rows if x["vectors"] == size)
                else ""
            ),
        )
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # log-axis minor labels overlapped
    _save(fig, out)


def llm_streams(reports: Path, out: Path) -> None:
    """Continuous batching: aggregate tokens/s and first-token latency against concurrent
    streams for each engine (benchmarks/bench_llm_chat.py)."""
    plt = _pyplot()
    b = _json(reports / "llm_chat" / "benchmark.json")
    fig, (tps, ttft) = plt.subplots(1, 2, figsize=(8.6, 3.2), layout="constrained")
    for key, engine in b.items():
        if not key.startswith("engine_"):
            continue
        streams = [
            1,
            *sorted(
                int(k.split("_")[-2])
                for k in engine
                if k.startswith("aggregate_tokens_per_s_") and k.endswith("streams")
            ),
        ]
        rates = [engine["decode_tokens_per_s_b1"]]
        rates += [engine[f"aggregate_tokens_per_s_{n}_streams"] for n in streams[1:]]
        waits = [engine["ttft_ms_p50"]]
        waits += [engine[f"ttft_ms_p50_{n}_streams"] for n in streams[1:]]
        label = key.removeprefix("engine_")
        tps.plot(streams, rates, marker="o", label=label)
        ttft.plot(streams, waits, marker="o", label=label)
    hf = b.get("hf_generate", {})
    if "aggregate_tokens_per_s_8_static_batch" in hf:  # the baseline the engines replace
        tps.scatter(
            [8],
            [hf["aggregate_tokens_per_s_8_static_batch"]],
            marker="x",
            color="black",
            label="HF generate, static batch 8",
            zorder=3,
        )
    for ax in (tps, ttft):
        ax.set(xscale="log", xlabel="concurrent streams")
        ax.set_xticks([1, 8, 16, 32], labels=["1", "8", "16", "32"])
    tps.set(
        ylabel="aggregate tokens/s", title=f"{b['tokens']} tokens a stream, {b['threads']} threads"
    )
    ttft.set(ylabel="time to first token p50 (ms)", title="first token")
    tps.legend(fontsize=7)
    _save(fig, out)


def rag_natural(reports: Path, out: Path) -> None:
    """Natural questions: retrieval of each variant (test split) and the relevance floor's
    trade-off between refusing unanswerable questions and refusing answerable ones (tune)."""
    plt = _pyplot()
    r = _json(reports / "rag_chatbot" / "natural.json")
    fig, (bars, floor) = plt.subplots(1, 2, figsize=(9, 3.4), width_ratios=[1.6, 1])
    names = list(r["variants"])
    metrics = ("recall@1", "recall@5", "mrr@5")
    width = 0.8 / len(metrics)
    for i, metric in enumerate(metrics):
        bars.bar(
            [j + i * width for j in range(len(names))],
            [r["variants"][n]["test"][metric] for n in names],
            width,
            label=metric,
        )
    bars.set_xticks(
        [j + width for j in range(len(names))], labels=names, rotation=45, ha="right", fontsize=7
    )
    q = r["questions"]["test"]
    bars.set(ylim=(0, 1), title=f"RAG retrieval, {q['answerable']} answerable test questions")
    bars.legend(fontsize=7, ncols=3, loc="upper right")
    sweep = r["service"]["min_relevance"]["sweep"]
    xs = [s["min_relevance"] for s in sweep]
    floor.plot(
        xs, [s["refused_unanswerable"] for s in sweep], marker=".", label="unanswerable refused"
    )
    floor.plot(xs, [s["idk_answerable"] for s in sweep], marker=".", label="answerable refused")
    chosen = r["service"]["min_relevance"]["value"]
    floor.axvline(chosen, color="grey", linestyle="--", label=f"chosen {chosen}")
    floor.set(xlabel="min_relevance", ylabel="share", title="relevance floor (tune split)")
    floor.legend(fontsize=7)
    _save(fig, out)


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
