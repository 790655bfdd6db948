"""Held-out evaluation of a model folder: answer perplexity, overlap of its greedy answers with
the reference (token F1 and ROUGE-L F), and preference win rate (how often it finds the grounded
answer likelier than the one from the wrong article, per token, so length does not decide)."""

import asyncio
import json
import re
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import torch

from llm_chat.finetune.batches import answer_logprobs, batched, collate, encode

WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def token_f1(prediction: str, reference: str) -> float:
    p, r = words(prediction), words(reference)
    common = sum((Counter(p) & Counter(r)).values())
    if not p or not r or not common:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """F-measure of the longest common subsequence of words."""
    p, r = words(prediction), words(reference)
    if not p or not r:
        return 0.0
    row = [0] * (len(r) + 1)
    for a in p:
        prev = 0
        for j, b in enumerate(r, start=1):
            prev, row[j] = row[j], prev + 1 if a == b else max(row[j], row[j - 1])
    lcs = row[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def generate_answers(model_dir: Path, prompts: list[list[dict]], max_tokens: int) -> list[str]:
    """Greedy answers through our own engine (batched decoding), as the server would give."""
    from transformers import AutoTokenizer

    from llm_chat.backends import load_backend, stop_tokens
    from llm_chat.engine import Engine
    from llm_chat.sampling import SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = [tokenizer.apply_chat_template(p, add_generation_prompt=True) for p in prompts]
    # Up to 32 prompts decoded together (~24 MB of KV cache each): greedy answers do not depend
    # on the batch, the time does (8 slots: 22 s a model on 2 cores).
    slots = max(1, min(len(ids), 32))
    build = partial(load_backend, "native", model_dir, slots=slots, max_len=512)  # see Engine
    eos = stop_tokens(model_dir, tokenizer)  # the server's
    engine = Engine(build, tokenizer, eos=eos, max_queue=len(ids))
    params = SamplingParams(max_tokens=max_tokens, temperature=0)

    async def one(prompt: list[int]) -> str:
        return "".join([d.text async for d in engine.stream(prompt, params)])

    async def run() -> list[str]:
        return await asyncio.gather(*[one(p) for p in ids])

    try:
        return asyncio.run(run())
    finally:
        engine.stop()


class PairScorer:
    """log p(answer | prompt) and the answer's token count per row, each distinct (prompt,
    answer) scored once: the DPO pairs' chosen answers are the SFT references (llm_data writes
    both from the same articles), so evaluate_model's third pass costs nothing."""

    def __init__(self, model, tokenizer, batch_size: int, max_tokens: int) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_tokens = batch_size, max_tokens
        eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        self.scored: dict[tuple[str, str], tuple[float, int]] = {}

    def __call__(self, rows: list[dict], key: str) -> tuple[torch.Tensor, torch.Tensor]:
        keys = [(json.dumps(r["prompt"]), r[key]) for r in rows]
        todo = list({k: r for k, r in zip(keys, rows, strict=True) if k not in self.scored}.items())
        with torch.inference_mode():
            for group in batched(todo, self.batch_size):
                examples = [
                    encode(self.tokenizer, r["prompt"], r[key], self.max_tokens) for _, r in group
                ]
                logp, count = answer_logprobs(self.model, collate(examples, self.pad))
                for (k, _), lp, n in zip(group, logp.tolist(), count.tolist(), strict=True):
                    self.scored[k] = (lp, n)
        return (
            torch.tensor([self.scored[k][0] for k in keys]),
            torch.tensor([self.scored[k][1] for k in keys]),
        )


def evaluate_model(
    model_dir: Path, sft_eval: list[dict], dpo_eval: list[dict], p: dict[str, Any]
) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    scores = PairScorer(model, tokenizer, p["batch_size"], p["max_tokens"])
    logp, count = scores(sft_eval, "answer")
    chosen, chosen_n = scores(dpo_eval, "chosen")
    rejected, rejected_n = scores(dpo_eval, "rejected")
    sample = sft_eval[: p["generate"]]
    answers = generate_answers(model_dir, [r["prompt"] for r in sample], p["answer_tokens"])
    return {
        "perplexity": round(float(torch.exp(-logp.sum() / count.sum())), 3),
        "token_f1": round(
            sum(map(token_f1, answers, [r["answer"] for r in sample])) / len(sample), 4
        ),
        "rouge_l": round(
            sum(map(rouge_l, answers, [r["answer"] for r in sample])) / len(sample), 4
        ),
        "preference_win_rate": round(
            float((chosen / chosen_n > rejected / rejected_n).float().mean()), 4
        ),
        "examples": {"perplexity": len(sft_eval), "generated": len(sample), "pairs": len(dpo_eval)},
        "sample_answer": {"prompt": sample[0]["prompt"][-1]["content"], "answer": answers[0]},
    }
