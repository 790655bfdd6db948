"""Instruction and preference sets from the packaged Wikipedia summaries, split by article.

SFT: a question about an article (several phrasings), answered from its summary's first
sentences. DPO: the same question, the grounded answer preferred over one drawn from another
article of the same topic (fluent, plausible, wrong: the error a model should learn to avoid).
"""

import json
import random
from pathlib import Path
from typing import Any

from mlstack.datasets import sentences, wiki_summaries

QUESTIONS = [
    "What is {title}?",
    "Tell me about {title}.",
    "Give me a short overview of {title}.",
    "What should I know about {title}?",
    "Explain {title} briefly.",
]


def answer(article: dict[str, str], max_sentences: int = 2) -> str:
    return " ".join(sentences(article["extract"])[:max_sentences])


def build(out_dir: Path, *, train_articles: int, eval_articles: int, seed: int) -> dict[str, Any]:
    """Writes sft_train.jsonl, sft_eval.jsonl, dpo_train.jsonl, dpo_eval.jsonl: each line
    {"prompt": [chat messages], "answer": str} or {"prompt", "chosen", "rejected"}."""
    rng = random.Random(seed)
    articles = [a for a in wiki_summaries() if len(sentences(a["extract"])) >= 2]
    rng.shuffle(articles)
    splits = {
        "train": articles[:train_articles],
        "eval": articles[train_articles : train_articles + eval_articles],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for split, chosen in splits.items():
        by_topic: dict[str, list[dict]] = {}
        for a in chosen:
            by_topic.setdefault(a["topic"], []).append(a)
        sft, dpo = [], []
        for a in chosen:
            question = rng.choice(QUESTIONS).format(title=a["title"])
            prompt = [{"role": "user", "content": question}]
            sft.append({"prompt": prompt, "answer": answer(a), "title": a["title"]})
            others = [o for o in by_topic[a["topic"]] if o is not a] or chosen
            wrong = rng.choice([o for o in others if o is not a])
            dpo.append(
                {
                    "prompt": prompt,
                    "chosen": answer(a),
                    "rejected": answer(wrong),
                    "title": a["title"],
                }
            )
        for name, rows in (("sft", sft), ("dpo", dpo)):
            path = out_dir / f"{name}_{split}.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            counts[f"{name}_{split}"] = len(rows)
    held_out = {a["title"] for a in splits["eval"]}
    assert not held_out & {a["title"] for a in splits["train"]}, "train and eval share articles"
    return {"examples": counts, "topics": len({a["topic"] for a in articles}), "seed": seed}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
