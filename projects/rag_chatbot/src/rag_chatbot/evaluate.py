"""The RAG evaluation: retrieval for every configuration, generation for a few, on the test split.

Retrieval (all test questions): recall@k and MRR by source article; context precision (share of
the sources actually put in the prompt, after the relevance floor and the token budget, that come
from the source article); how often the floor leaves nothing (right for unanswerable questions).

Generation (a sample, through the OpenAI-compatible endpoint): faithfulness (share of answer
sentences supported by the sources, `support.py`), citation correctness (a model-written [n] whose
source supports its sentence), answer relevance (cosine of question and answer embeddings),
answer correctness (share of the reference's content words in the answer), no-answer accuracy;
scored in answer_scores.py, each with its count and 95% interval, None when there is nothing to
measure (citation correctness of answers that cite nothing).

The relevance floor is swept on the tune split only, with the service's configuration; with
`min_relevance: tune` (params.yaml) the best balanced accuracy there is the floor every
configuration is scored with on the test split, and the one the serving card hands the service.
"""

import asyncio
import contextlib
import json
import time
from dataclasses import replace
from typing import Any

import numpy as np

from rag_chatbot.answer import Rag, RagConfig
from rag_chatbot.answer_scores import generation_metrics, score_answer

FUSION_KEYS = ("rrf_k", "dense_weight", "bm25_weight", "candidates")


def configs(p: dict[str, Any], min_relevance: float) -> dict[str, tuple[int, RagConfig]]:
    """Every mode x MMR x chunk size; the name says which."""
    r, g = p["retrieval"], p["generation"]
    base = RagConfig(
        k=r["k"],
        mode=r["mode"],
        diversify=r["diversify"],
        max_per_document=r.get("max_per_document"),
        min_relevance=min_relevance,
        context_tokens=r["context_tokens"],
        answer_tokens=g["answer_tokens"],
        temperature=g["temperature"],
        support_threshold=p["evaluate"]["support_threshold"],
        rewrite=False,
        attribute=False,
        expand=r.get("expand"),
    )
    out = {}
    for size in p["chunking"]["sizes"]:
        for mode in ("dense", "hybrid"):
            for mmr in (True, False):
                name = f"{mode}{'+mmr' if mmr else ''}/{size}"
                out[name] = (
                    size,
                    replace(base, mode=mode, diversify=r["diversify"] if mmr else None),
                )
    return out


def default_config_name(p: dict[str, Any]) -> str:
    r = p["retrieval"]
    return f"{r['mode']}{'+mmr' if r['diversify'] is not None else ''}/{p['chunking']['default']}"


def _used(sources, config: RagConfig, min_relevance: float) -> list:
    """The sources the prompt would hold: above the floor, within the token budget."""
    kept, used = [], 0
    for s in sources:
        if s.relevance < min_relevance:
            continue
        if used + s.tokens > config.context_tokens:
            break
        kept.append(s)
        used += s.tokens
    return kept


def retrieval_metrics(rag: Rag, config: RagConfig, questions: list[dict]) -> tuple[dict, list]:
    raw_config = replace(config, min_relevance=-1.0, context_tokens=10**9)
    rows = []
    for q in questions:
        sources = rag.retrieve(q["question"], raw_config).sources
        rows.append((q, sources))
    answerable = [(q, s) for q, s in rows if q["answerable"]]
    unanswerable = [(q, s) for q, s in rows if not q["answerable"]]
    recall, rr, precision, answered = [], [], [], []
    for q, sources in answerable:
        ranks = [i for i, s in enumerate(sources, start=1) if s.doc_id == q["source"]]
        recall.append(bool(ranks))
        rr.append(1 / ranks[0] if ranks else 0.0)
        used = _used(sources, config, config.min_relevance)
        answered.append(bool(used))
        if used:
            precision.append(np.mean([s.doc_id == q["source"] for s in used]))
    refused = [not _used(s, config, config.min_relevance) for _, s in unanswerable]
    metrics = {
        f"recall@{config.k}": float(np.mean(recall)),
        "mrr": float(np.mean(rr)),
        "context_precision": float(np.mean(precision)) if precision else 0.0,
        "answerable_with_context": float(np.mean(answered)),
        "unanswerable_without_context": float(np.mean(refused)) if refused else 0.0,
    }
    # the counts behind the shares, for their intervals (recall and context: answerable ones)
    counts = {"n": {"answerable": len(answerable), "unanswerable": len(unanswerable)}}
    return {k: round(v, 4) for k, v in metrics.items()} | counts, rows


def threshold_sweep(rows: list, config: RagConfig) -> dict[str, Any]:
    """On the tune split: how the floor trades answerable questions kept for unanswerable ones
    refused; picks the best balanced accuracy."""
    sweep = []
    for floor in np.round(np.arange(0.2, 0.71, 0.05), 2):
        keep = [bool(_used(s, config, floor)) for q, s in rows if q["answerable"]]
        refuse = [not _used(s, config, floor) for q, s in rows if not q["answerable"]]
        sweep.append(
            {
                "min_relevance": float(floor),
                "answerable_kept": round(float(np.mean(keep)), 4),
                "unanswerable_refused": round(float(np.mean(refuse)), 4) if refuse else 0.0,
            }
        )
    best = max(sweep, key=lambda r: r["answerable_kept"] + r["unanswerable_refused"])
    return {"sweep": sweep, "best_balanced": best}


def relevance_floor(
    setting: float | str, sweep: dict[str, Any], natural: dict[str, Any] | None = None
) -> dict[str, Any]:
    """params.yaml's `min_relevance`: `tune` takes the sweep's pick; `natural` the floor
    rag_natural_eval chose on the natural questions' tune split (`natural`: its report's
    `min_relevance`); a number pins it."""
    if setting == "natural":
        if natural is None:
            raise ValueError("min_relevance: natural needs reports/rag_chatbot/natural.json")
        return {k: natural[k] for k in ("value", "chosen_on", "rule")}
    if setting == "tune":
        return {
            "value": sweep["best_balanced"]["min_relevance"],
            "chosen_on": "tune split",
            "rule": "best balanced accuracy (answerable kept + unanswerable refused)",
        }
    if isinstance(setting, bool) or not isinstance(setting, int | float) or not -1 <= setting <= 1:
        raise ValueError(
            f"rag_chatbot.retrieval.min_relevance: `tune` or a cosine, not {setting!r}"
        )
    return {"value": float(setting), "chosen_on": "params.yaml"}


async def generate_all(rag: Rag, config: RagConfig, questions: list[dict], concurrency: int):
    gate = asyncio.Semaphore(concurrency)

    async def one(q: dict) -> dict:
        async with gate:
            return await rag.answer([{"role": "user", "content": q["question"]}], config)

    return await asyncio.gather(*(one(q) for q in questions))


def answer_all(rag: Rag, config: RagConfig, questions: list[dict], url: str, g: dict[str, Any]):
    """`questions` answered through the generator at `url` (`g`: params' generation section),
    with a client of their own that is closed after; the events and the seconds taken."""
    from rag_chatbot.generator import OpenAIGenerator

    async def run() -> list[dict]:
        rag.generator = OpenAIGenerator(url, model=g.get("model", ""), timeout_s=900)
        try:
            return await generate_all(rag, config, questions, g["concurrency"])
        finally:
            await rag.generator.close()

    t0 = time.perf_counter()
    events = asyncio.run(run())
    return events, time.perf_counter() - t0


@contextlib.contextmanager
def generator_endpoint(g: dict[str, Any]):
    """`g["url"]` if set; else the LLM chat app on a local port, in this process."""
    if g.get("url"):
        yield g["url"]
        return
    from llm_chat.service import Settings, build_app
    from mlstack.testing import live_server

    settings = Settings(
        model_dir=g["model_dir"],
        backend=g["backend"],
        slots=g["concurrency"],
        redact_pii=False,
        refuse_prompt_injection=False,
    )
    with live_server(build_app(settings), timeout_s=300) as base:
        yield base + "/v1"


def _sample(test: list[dict], per_kind: int, unanswerable: int) -> list[dict]:
    """The first questions of each kind, in file order (the question stage shuffled them)."""
    out: list[dict] = []
    for kind in ("overview", "identify", "detail"):
        out += [q for q in test if q["kind"] == kind][:per_kind]
    return out + [q for q in test if not q["answerable"]][:unanswerable]


def run_evaluation(p: dict[str, Any], questions: list[dict]) -> dict[str, Any]:
    from tqdm import tqdm

    from rag_chatbot.chunking import load_tokenizer
    from rag_chatbot.pipeline import REPORTS, open_library
    from semantic_search.retrieval import Retriever

    e, g = p["evaluate"], p["generation"]
    test = [q for q in questions if q["split"] == "test"]
    tune = [q for q in questions if q["split"] == "tune"]
    default = default_config_name(p)
    report: dict[str, Any] = {
        "questions": {"test": len(test), "tune": len(tune)},
        "default": default,
        "configs": {},
    }
    tokenizer = load_tokenizer(g["tokenizer"])
    fields = p["retrieval"].get("bm25_fields") or {}
    libraries = {
        size: open_library(
            size, p["chunking"]["overlap_tokens"], threads=e["threads"], bm25_fields=fields
        )
        for size in p["chunking"]["sizes"]
    }
    fusion = {k: p["retrieval"][k] for k in FUSION_KEYS if k in p["retrieval"]}
    sample = _sample(test, e["generate_per_kind"], e["generate_unanswerable"])
    # The floor first, on the tune split with the configuration the service runs.
    size, config = configs(p, -1.0)[default]
    rag = Rag(
        Retriever(libraries[size].encoder, libraries[size].store, **fusion), None, tokenizer, config
    )
    report["threshold"] = threshold_sweep(retrieval_metrics(rag, config, tune)[1], config)
    natural = REPORTS / "natural.json"
    chosen = json.loads(natural.read_text())["min_relevance"] if natural.exists() else None
    report["min_relevance"] = relevance_floor(
        p["retrieval"]["min_relevance"], report["threshold"], chosen
    )
    with generator_endpoint(g) as url:
        for name, (size, config) in tqdm(
            configs(p, report["min_relevance"]["value"]).items(), desc="configurations"
        ):
            library = libraries[size]
            retriever = Retriever(library.encoder, library.store, **fusion)
            rag = Rag(retriever, None, tokenizer, config)
            metrics, _ = retrieval_metrics(rag, config, test)
            report["configs"][name] = {"chunk_tokens": size, "retrieval": metrics}
            # The served configuration is always answered: rag_register gates on its answers.
            if not sample or (name not in e["generate_configs"] and name != default):
                continue

            events, seconds = answer_all(rag, config, sample, url, g)
            scored = [
                score_answer(q, ev, library.encoder, config.support_threshold)
                for q, ev in zip(sample, events, strict=True)
            ]
            gen = generation_metrics(scored)
            gen |= {"questions": len(sample), "seconds": round(seconds, 1)}
            report["configs"][name]["generation"] = gen
            if name == default:
                report["examples"] = [
                    {**r, "question": q["question"], "reference": q["reference"]}
                    for q, r in zip(sample, scored, strict=True)
                ][:: max(1, len(sample) // 12)]
    _log_to_mlflow(p, report)
    return report


def _log_to_mlflow(p: dict[str, Any], report: dict[str, Any]) -> None:
    import mlflow

    from mlstack.train.tracking import mlflow_run

    params = {
        "default": report["default"],
        **{f"retrieval.{k}": v for k, v in p["retrieval"].items()},
        "min_relevance_chosen": report["min_relevance"]["value"],
        **{f"generation.{k}": v for k, v in p["generation"].items()},
    }
    with mlflow_run("rag-chatbot", run_name="evaluate", params=params) as run:
        for name, result in report["configs"].items():
            key = name.replace("+", "_").replace("/", "_")
            for part in ("retrieval", "generation"):
                values = result.get(part, {})
                # numbers only: a figure with nothing to measure is None (MLflow has no
                # missing value), and the counts and intervals are nested dicts
                mlflow.log_metrics(
                    {
                        f"{key}.{k.replace('@', '_at_')}": v
                        for k, v in values.items()
                        if isinstance(v, int | float) and not isinstance(v, bool)
                    }
                )
        report["mlflow_run_id"] = run.info.run_id
