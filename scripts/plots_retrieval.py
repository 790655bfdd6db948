"""scripts/plots.py's retrieval figures: the semantic search modes and vector indexes, and the
RAG chatbot's retrieval on natural questions with its relevance floor."""

from pathlib import Path

from plots_common import MissingInputError, pyplot, read_json, save


def search_modes(reports: Path, out: Path) -> None:
    """Known-item retrieval: recall@10 against latency per mode (ss_evaluate, k=10)."""
    plt = pyplot()
    r = read_json(reports / "semantic_search" / "retrieval.json")
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
    save(fig, out)


def search_index(reports: Path, out: Path) -> None:
    """Vector indexes: recall@10 against p50 latency, per corpus size (`make bench`)."""
    plt = pyplot()
    indexes = read_json(reports / "semantic_search" / "benchmark.json").get("indexes")
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
    save(fig, out)


def rag_natural(reports: Path, out: Path) -> None:
    """Natural questions: retrieval of each variant (test split) and the relevance floor's
    trade-off between refusing unanswerable questions and refusing answerable ones (tune)."""
    plt = pyplot()
    r = read_json(reports / "rag_chatbot" / "natural.json")
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
    save(fig, out)
