"""What the README's results scripts print from report files: small-sample figures with two
decimals and an interval, "n/a" for what was not measured, synthetic benchmark inputs named as
such, and each speed-up from one file, once."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scripts(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    monkeypatch.chdir(tmp_path)
    import results_rag
    import results_stats
    import results_table

    return results_table, results_rag, results_stats


def write(path: str, data: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data))


def generation(**overrides) -> dict:
    g = {
        "faithfulness": 0.7188,
        "citation_correctness": None,
        "answers_with_citations": 0.0,
        "answers_with_citations_after_attribution": 0.7188,
        "answer_relevance": 0.7618,
        "answer_correctness": 0.2553,
        "no_answer_accuracy": 0.8333,
        "answered_rate": 0.8333,
        "questions": 48,
        "n": {"answered_rate": 36, "no_answer_accuracy": 12, "citation_correctness": 0},
        "interval95": {
            "faithfulness": [0.58, 0.84],
            "citation_correctness": None,
            "answers_with_citations": [0.0, 0.11],
            "no_answer_accuracy": [0.5521, 0.953],
        },
    }
    return g | overrides


def evaluation(gen: dict) -> dict:
    retrieval = {
        "recall@5": 0.9111,
        "mrr": 0.8519,
        "context_precision": 0.6889,
        "answerable_with_context": 0.8296,
        "unanswerable_without_context": 0.5122,
        "n": {"answerable": 270, "unanswerable": 41},
    }
    return {
        "questions": {"test": 311, "tune": 100},
        "default": "hybrid+mmr/160",
        "configs": {"hybrid+mmr/160": {"retrieval": retrieval, "generation": gen}},
        "threshold": {
            "best_balanced": {
                "min_relevance": 0.55,
                "answerable_kept": 0.8333,
                "unanswerable_refused": 0.7895,
            }
        },
    }


def test_rag_generation_prints_intervals_and_na(scripts):
    _, results_rag, _ = scripts
    write("reports/rag_chatbot/evaluation.json", evaluation(generation()))
    text = results_rag.rag_chatbot()
    row = next(line for line in text.splitlines() if line.startswith("| hybrid+mmr/160 | 0.72"))
    assert row.startswith("| hybrid+mmr/160 | 0.72 [0.58, 0.84] | n/a | 0.00 [0.00, 0.11] / ")
    assert "0.83 [0.55, 0.95]" in row  # no-answer accuracy: 10 of 12, its stored interval
    assert "0.7188" not in text and "0.8333" not in row  # no four-decimal figures of 48
    assert "(36 answerable, 12 unanswerable)" in text
    # retrieval shares: Wilson from the stored counts (270 answerable, 41 unanswerable)
    assert "| 0.91 [0.87, 0.94] |" in text and "0.51 [0.36, 0.66]" in text


def test_an_old_reports_zero_for_nothing_cited_prints_na(scripts):
    _, results_rag, _ = scripts
    old = generation(citation_correctness=0.0)
    del old["interval95"], old["n"]
    write("reports/rag_chatbot/evaluation.json", evaluation(old))
    row = next(line for line in results_rag.rag_chatbot().splitlines() if "| 0.72 |" in line)
    assert row.startswith("| hybrid+mmr/160 | 0.72 | n/a | 0.00 / 0.72 |")


def test_rate_and_wilson(scripts):
    _, _, stats = scripts
    assert stats.rate(None) == "n/a"
    assert stats.rate(0.5) == "0.50"
    assert stats.rate(0.0, 12) == "0.00 [0.00, 0.24]"
    low, high = stats.wilson(0.5833, 12)
    assert low == pytest.approx(0.3195, abs=1e-3) and high == pytest.approx(0.8067, abs=1e-3)


def test_index_table_names_synthetic_inputs(scripts):
    results_table, _, _ = scripts
    row = {"index": "exact (numpy)", "recall@10": 1.0, "p50_ms": 1, "p99_ms": 2, "build_s": 0}
    new = {
        "command": "python benchmarks/bench_semantic_search.py --vectors 1000000",
        "setup": {
            "threads": 2,
            "hnsw": {"m": 32, "ef_construction": 200, "ef_search": 64},
            "queries": "real: held-out descriptions",
            "base": {"real": "the 10,033 corpus embeddings", "synthetic": "SYNTHETIC: resampled"},
        },
        "rows": [
            row | {"vectors": 10033, "synthetic_vectors": False},
            row | {"vectors": 1000000, "synthetic_vectors": True},
        ],
    }
    text = "\n".join(results_table._index_rows(new))
    assert "| 1,000,000 (synthetic) | exact (numpy) |" in text
    assert "| 10,033 | exact (numpy) |" in text
    assert "--vectors 1000000" in text and "capped at 2 threads" in text
    assert "Queries: real: held-out descriptions" in text
    # a report from before the setup was stored: its inputs are called synthetic too
    old = "\n".join(results_table._index_rows([row | {"vectors": 10033}, row | {"vectors": 10**6}]))
    assert "SYNTHETIC" in old and "| 1,000,000 (synthetic) |" in old


def test_classifier_speedups_come_from_one_file_once(scripts):
    results_table, _, _ = scripts
    write("models/image_classifier/champion.json", {"champion": "resnet"})
    write("reports/image_classifier/data_report.json", {"source": "digits"})
    for name, speedup in (("resnet", 8.46), ("efficientnet", 14.22)):
        write(
            f"reports/image_classifier/{name}/metrics.json",
            {"samples": 270, "accuracy": 1.0, "macro_f1": 1.0, "ece": 0.1},
        )
        int8 = {"accuracy": 1.0, "size_bytes": 340225, "speedup_batch1": speedup}
        write(
            f"reports/image_classifier/{name}/quantize.json",
            {
                "threads": 2,
                "batch_size": 32,
                "variants": {"onnx_int8": int8 | {"speedup_batch32": 4.1}},
            },
        )
    variants = {  # `make bench`'s own measurement of the same comparison: 6.5x at batch 1
        "torch_fp32": {"latency_ms_p50": 2.5, "throughput_per_s": 738, "accuracy": 1.0},
        "onnx_int8": {"latency_ms_p50": 0.385, "throughput_per_s": 2419, "accuracy": 1.0},
    }
    write(
        "reports/image_classifier/benchmark.json",
        {"model": "resnet", "threads": 2, "batch_size": 32, "variants": variants},
    )
    text = results_table.image_classifier()
    assert text.count("8.46x") == 1 and text.count("14.22x") == 1
    assert "2597" not in text and "6.5" not in text  # 1000 / 0.385 images/s: not quoted


def test_demo_timing_says_when_stages_did_not_run(scripts, monkeypatch):
    import results_demo

    stages = [
        {"name": "ic_train@resnet", "outcome": "ran", "seconds": 90.0},
        {"name": "ss_embed@fp32", "outcome": "ran", "seconds": 150.0},
        {"name": "llm_sft", "outcome": "ran", "seconds": 120.0},
        {"name": "rag_index", "outcome": "ran", "seconds": 60.0},
    ]
    run = {"started_at": "2026-12-07T17:01:14+00:00", "exit_status": 0, "total_s": 420.0}
    write("reports/demo_timings.json", run | {"stages": stages})
    text = results_demo.demo_timings()
    assert "**7.0 min**" in text and "4 stages ran)" in text
    assert "semantic search 2.5 min" in text and "RAG chatbot 1.0 min" in text
    assert text.index("`ss_embed@fp32` 150 s") < text.index("`llm_sft` 120 s")

    stages[3] = {"name": "rag_index", "outcome": "unchanged", "seconds": 0.4}
    stages[2] = {"name": "llm_sft", "outcome": "run cache", "seconds": 2.0}
    stages[1] = {"name": "ss_embed@fp32", "outcome": "failed", "seconds": 3.0}
    write("reports/demo_timings.json", run | {"stages": stages, "exit_status": 1})
    text = results_demo.demo_timings()
    assert "1 stages ran, 1 found unchanged, 1 restored from the run cache, 1 failed" in text
    assert "exit status 1" in text
