"""Direct preference optimisation (Rafailov et al., 2023) in a few lines: a fresh LoRA on the
SFT model is the policy, and the same model with the adapter switched off is the frozen
reference, so no second copy of the weights is needed.

    loss = -log sigmoid(beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected))))
"""

import random
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from llm_chat.convert import readable_by_all
from llm_chat.finetune.batches import answer_logprobs, batched, collate, encode
from llm_chat.finetune.sft import lora_model
from mlstack.train import TrainConfig, fit


def reward_margins(model, chosen: dict, rejected: dict) -> torch.Tensor:
    """Per pair: how much more the policy (vs the reference) prefers chosen over rejected."""
    policy_chosen, _ = answer_logprobs(model, chosen)
    policy_rejected, _ = answer_logprobs(model, rejected)
    with torch.no_grad(), model.disable_adapter():
        ref_chosen, _ = answer_logprobs(model, chosen)
        ref_rejected, _ = answer_logprobs(model, rejected)
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)


def train_dpo(sft_dir: Path, train: list[dict], held_out: list[dict], out_dir: Path,
              p: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    model, tokenizer = lora_model(sft_dir, p["lora"])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    beta = p["beta"]

    def pairs(rows: list[dict], shuffle: bool) -> list[tuple[dict, dict]]:
        rows = list(rows)
        if shuffle:
            random.Random(p["seed"]).shuffle(rows)
        out = []
        for group in batched(rows, p["batch_size"]):
            chosen = [encode(tokenizer, r["prompt"], r["chosen"], p["max_tokens"]) for r in group]
            rejected = [
                encode(tokenizer, r["prompt"], r["rejected"], p["max_tokens"]) for r in group
            ]
            out.append((collate(chosen, pad), collate(rejected, pad)))
        return out

    def loss(m, batch) -> torch.Tensor:
        return -F.logsigmoid(beta * reward_margins(m, *batch)).mean()

    eval_pairs = pairs(held_out, False)

    def evaluate(m) -> dict[str, float]:
        margins = torch.cat([reward_margins(m, *b) for b in eval_pairs])
        return {"eval_dpo_loss": float(-F.logsigmoid(beta * margins).mean()),
                "eval_reward_accuracy": float((margins > 0).float().mean())}  # fmt: skip

    config = TrainConfig(epochs=p["epochs"], lr=p["lr"], monitor="eval_dpo_loss", mode="min",
                         patience=1, warmup_ratio=0.1, seed=p["seed"])  # fmt: skip
    result = fit(model, pairs(train, True), loss_fn=loss, evaluate=evaluate, config=config)
    model.save_pretrained(out_dir / "adapter")
    model.merge_and_unload().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    readable_by_all(out_dir)  # served by the images' uid 10001
    return {"history": result.history, "best_epoch": result.best_epoch, "beta": beta,
            "seconds": round(result.seconds, 1)}  # fmt: skip
