"""Direct preference optimisation (Rafailov et al., 2023) in a few lines: a fresh LoRA on the
SFT model is the policy, and the same model with the adapter switched off is the frozen
reference, so no second copy of the weights is needed.

    margin(x) = log pi(x) - log ref(x)
    loss = -log sigmoid(beta * (margin(chosen) - margin(rejected)))

Chosen and rejected answers go through the model in one forward pass (padded to one width): one
batched call instead of two, and DDP (under torchrun) needs one forward per backward. Device,
precision and processes work as in sft.py.
"""

import random
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from llm_chat.finetune.batches import IGNORE, answer_logprobs, batched, collate, encode
from llm_chat.finetune.sft import lora_model, save_merged
from mlstack.train import TrainConfig, distributed, fit
from mlstack.train.batching import to_device
from mlstack.train.device import run_options


def stack(chosen: dict, rejected: dict) -> dict[str, torch.Tensor]:
    """Chosen rows then rejected rows, right-padded to one width (masked, ignored): under a
    causal mask padding on the right leaves every real token's log-probability unchanged."""
    width = max(chosen["input_ids"].shape[1], rejected["input_ids"].shape[1])
    fill = {"input_ids": 0, "attention_mask": 0, "labels": IGNORE}
    return {
        k: torch.cat([F.pad(b[k], (0, width - b[k].shape[1]), value=v) for b in (chosen, rejected)])
        for k, v in fill.items()
    }


def reward_margins(model, chosen: dict, rejected: dict) -> torch.Tensor:
    """Per pair: how much more the policy (vs the reference) prefers chosen over rejected."""
    both = stack(chosen, rejected)
    policy, _ = answer_logprobs(model, both)
    # the reference: the peft model itself, not a DDP/compile wrapper, with its adapter off
    peft_model = distributed.unwrap(model)
    with torch.no_grad(), peft_model.disable_adapter():
        reference, _ = answer_logprobs(peft_model, both)
    diff = policy - reference
    n = chosen["input_ids"].shape[0]
    return diff[:n] - diff[n:]


def train_dpo(
    sft_dir: Path, train: list[dict], held_out: list[dict], out_dir: Path, p: dict[str, Any]
) -> dict[str, Any]:
    model, tokenizer = lora_model(sft_dir, p["lora"], p["seed"])
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
        device = next(m.parameters()).device  # fit() may have moved it to a GPU
        margins = torch.cat([reward_margins(m, *to_device(b, device)) for b in eval_pairs])
        return {
            "eval_dpo_loss": float(-F.logsigmoid(beta * margins).mean()),
            "eval_reward_accuracy": float((margins > 0).float().mean()),
        }

    config = TrainConfig(
        epochs=p["epochs"],
        lr=p["lr"],
        monitor="eval_dpo_loss",
        mode="min",
        patience=1,
        warmup_ratio=0.1,
        seed=p["seed"],
        **run_options(p),
    )
    train_pairs = distributed.shard(pairs(train, True))  # all of them in a single process
    result = fit(model, train_pairs, loss_fn=loss, evaluate=evaluate, config=config)
    save_merged(model, tokenizer, out_dir)
    return {
        "history": result.history,
        "best_epoch": result.best_epoch,
        "beta": beta,
        "seconds": round(result.seconds, 1),
    }
