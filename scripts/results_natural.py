"""The README's natural-question rows (issue 18), from reports/rag_chatbot/natural.json
(`dvc repro rag_natural_eval`) and reports/semantic_search/natural.json (`ss_natural_eval`);
results_table.py renders them under each project's table. Choices are made on tune; test is
the reported split."""

import json
from pathlib import Path

from results_stats import rate

RAG = Path("reports/rag_chatbot/natural.json")
SEARCH = Path("reports/semantic_search/natural.json")


def _count(s: dict, key: str) -> int | None:
    """What a share is of: refusals of the unanswerable questions, the rest of answerable."""
    return s.get("unanswerable" if key.startswith("refused") else "answerable")


def _split(s: dict, keys: tuple[str, ...], interval: bool) -> str:
    """Shares of 19 to 121 questions: two decimals; on the reported (test) split with their
    95% Wilson interval too. Tune only picks settings, so its figures stay bare."""
    return " | ".join(
        rate(s[k], _count(s, k) if interval else None) if k in s else "" for k in keys
    )


def _rows(rows: dict[str, dict], keys: tuple[str, ...]) -> list[str]:
    """One table row per variant: its tune figures, its test figures, the test p99."""
    return [
        f"| {name} | {_split(v['tune'], keys, False)} | {_split(v['test'], keys, True)} "
        f"| {v['test'].get('latency_p99_ms', '')} |"
        for name, v in rows.items()
    ]


def rag_natural() -> list[str]:
    if not RAG.exists():
        return []
    r = json.loads(RAG.read_text())
    q, floor = r["questions"], r["min_relevance"]
    keys = ("recall@1", "recall@5", "idk_answerable", "refused_unanswerable")
    lines = [
        "",
        f"Natural questions (`reports/rag_chatbot/natural.json`; plain-language questions "
        f"written apart from the corpus, `projects/rag_chatbot/data/NATURAL_QUESTIONS.md`): tune "
        f"{q['tune']['answerable']} answerable + {q['tune']['unanswerable']} unanswerable, test "
        f"{q['test']['answerable']} + {q['test']['unanswerable']}. Retrieval as the service runs "
        f"it (`/v1/retrieve`), each variant one change from it; each row's relevance floor chosen "
        f"on tune (served: `min_relevance` {floor['value']}, {floor['rule']}); test shares with "
        "their 95% Wilson interval:",
        "",
        "| retrieval | tune R@1 | tune R@5 | tune I don't know | tune refused | test R@1 "
        "| test R@5 | test I don't know | test refused | test p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = {"**served**": r["service"]} | {
        f"{name} `{json.dumps(v['change'])}`": v for name, v in r["variants"].items()
    }
    lines += _rows(rows, keys)
    if a := r.get("answers"):
        lines += [
            "",
            f"Answered end to end (generator `{a['model_dir'] or a['url']}`, served retrieval and "
            "floor; `rag_chatbot.natural.generate`):",
            "",
            "| split | answerable | unanswerable | cites the answer article | I don't know "
            "(answerable) | refused (unanswerable) |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("tune", "test"):
            if name not in a:  # `natural.generate.splits` left it out
                continue
            s = a[name]
            shares = ("cites_answer_article", "idk_answerable", "refused_unanswerable")
            lines.append(
                f"| {name} | {s['answerable']} | {s['unanswerable']} | "
                f"{_split(s, shares, name == 'test')} |"
            )
    return lines


def search_natural() -> list[str]:
    if not SEARCH.exists():
        return []
    r = json.loads(SEARCH.read_text())
    keys = ("recall@1", "recall@5", "recall@10")
    lines = [
        "",
        "Natural questions (`reports/semantic_search/natural.json`; the RAG chatbot's set, "
        "answerable ones; each variant one change from the served hybrid search; test shares with "
        "their 95% Wilson interval):",
        "",
        "| search | tune R@1 | tune R@5 | tune R@10 | test R@1 | test R@5 | test R@10 "
        "| test p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = {f"{m} (served settings)": v for m, v in r["modes"].items()} | {
        f"hybrid, {name} `{json.dumps(v['change'])}`": v for name, v in r["variants"].items()
    }
    lines += _rows(rows, keys)
    return lines
