"""The README's RAG chatbot figures (reports/rag_chatbot/evaluation.json and benchmark.json);
results_table.py renders them in the results block.

The generation sample is small (48 questions a configuration: 36 answerable, 12 unanswerable),
so its figures print with two decimals and their 95% interval (results_stats.py), and a figure
with nothing to measure (citation correctness when no answer cited) prints "n/a", not 0.
"""

import json
from pathlib import Path

from results_stats import rate

EVALUATION = Path("reports/rag_chatbot/evaluation.json")
BENCH = Path("reports/rag_chatbot/benchmark.json")
GENERATION = (
    "faithfulness",
    "citation_correctness",
    "answers_with_citations",
    "answers_with_citations_after_attribution",
    "answer_relevance",
    "answer_correctness",
    "no_answer_accuracy",
    "answered_rate",
)


def _retrieval_rows(e: dict, recall: str) -> list[str]:
    """Shares over answerable (or unanswerable) questions get Wilson intervals when the report
    has their counts; MRR and context precision are means, printed with two decimals."""
    rows = []
    for name, c in e["configs"].items():
        r = c["retrieval"]
        n = r.get("n", {})
        yes, no = n.get("answerable"), n.get("unanswerable")
        rows.append(
            f"| {name} | {rate(r[recall], yes)} | {r['mrr']:.2f} | {r['context_precision']:.2f} "
            f"| {rate(r['answerable_with_context'], yes)} "
            f"| {rate(r['unanswerable_without_context'], no)} |"
        )
    return rows


def _generation_rows(generated: dict[str, dict]) -> list[str]:
    rows = []
    for name, g in generated.items():
        intervals = g.get("interval95", {})
        # reports written before the intervals were: the figure alone, two decimals
        cells = {k: rate(g.get(k), interval=intervals.get(k)) for k in GENERATION}
        if (
            "interval95" not in g
            and g.get("citation_correctness") == 0.0
            and not g.get("answers_with_citations")
        ):
            cells["citation_correctness"] = "n/a"  # an old report's 0.0 meant "nothing cited"
        rows.append(
            f"| {name} | {cells['faithfulness']} | {cells['citation_correctness']} | "
            f"{cells['answers_with_citations']} / "
            f"{cells['answers_with_citations_after_attribution']} | "
            f"{cells['answer_relevance']} | {cells['answer_correctness']} | "
            f"{cells['no_answer_accuracy']} | {cells['answered_rate']} |"
        )
    return rows


def _load_rows(b: dict) -> list[str]:
    def row(r: dict) -> str:
        return (
            f"{r['requests_per_s']} req/s, p50 {r['latency_ms']['p50']} ms, p99 "
            f"{r['latency_ms']['p99']} ms, {r['errors']} errors of {r['requests']}"
        )

    lines = [
        "",
        f"Under load (`benchmarks/bench_rag_chatbot.py`, {b['clients']} clients, one "
        "service process, the load generator on the same cores):",
        "",
        f"- `/v1/retrieve`: {row(b['retrieve'])}",
        "- `/v1/chat` with an instant fake generator (our side only): "
        f"{row(b['chat_fake_generator'])}",
    ]
    if "chat_llm_chat" in b:
        lines.append(
            "- `/v1/chat` generating with the LLM chat service "
            f"({b['chat_llm_chat']['clients']} clients): {row(b['chat_llm_chat'])}"
        )
    return lines


def rag_chatbot() -> str:
    if not EVALUATION.exists():
        return "**RAG chatbot**: run `dvc repro` to produce its figures."
    e = json.loads(EVALUATION.read_text())
    k = next(iter(e["configs"].values()))["retrieval"]
    recall = next(key for key in k if key.startswith("recall@"))
    lines = [
        f"**RAG chatbot** retrieval, test split ({e['questions']['test']} questions, "
        f"default `{e['default']}`; `reports/rag_chatbot/evaluation.json`; shares with their "
        "95% Wilson interval where the report has their counts):",
        "",
        f"| configuration | {recall} | MRR | context precision | answerable given context "
        "| unanswerable left without context |",
        "|---|---|---|---|---|---|",
        *_retrieval_rows(e, recall),
    ]
    generated = {n: c["generation"] for n, c in e["configs"].items() if "generation" in c}
    if generated:
        first = next(iter(generated.values()))
        counts = first.get("n", {})
        sample = (
            f" ({counts['answered_rate']} answerable, {counts['no_answer_accuracy']} unanswerable)"
            if "answered_rate" in counts
            else ""
        )
        lines += [
            "",
            f"Generation ({first['questions']} test questions per configuration{sample}, through "
            "the LLM chat service; each figure with its 95% interval: Wilson for shares, a "
            "bootstrap over answers for mean scores; n/a: nothing to measure, e.g. no answer "
            "cited a source):",
            "",
            "| configuration | faithfulness | citation correctness | answers citing (model "
            "/ after attribution) | answer relevance | answer correctness | no-answer "
            "accuracy | answered rate |",
            "|---|---|---|---|---|---|---|---|",
            *_generation_rows(generated),
        ]
    if BENCH.exists():
        lines += _load_rows(json.loads(BENCH.read_text()))
    best = e["threshold"]["best_balanced"]
    floor = (
        f"Relevance floor, swept on this set's tune split only: best balanced at "
        f"`min_relevance` {best['min_relevance']} (answerable kept {best['answerable_kept']}, "
        f"unanswerable refused {best['unanswerable_refused']})."
    )
    if used := e.get("min_relevance"):  # reports since the floor could come from elsewhere
        floor += f" Used above and served: {used['value']}, chosen on the {used['chosen_on']}"
        floor += f" ({used['rule']})." if "rule" in used else "."
    lines += ["", floor]
    return "\n".join(lines)
