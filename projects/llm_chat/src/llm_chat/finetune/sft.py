"""LoRA supervised fine-tuning with peft, on mlstack's training loop (early stopping on the
held-out answer loss); the adapter is saved, then merged into a plain Hugging Face folder the
server loads like any other.

Device, precision and torch.compile come from the stage's params, else params.yaml `training`,
else `auto` (MLSTACK_DEVICE / MLSTACK_PRECISION override). Under `torchrun` each process trains
on its share of the batches (DDP: the global batch is batch_size x processes) and rank 0 saves.
"""

import random
from pathlib import Path
from typing import Any

import torch

from llm_chat.convert import readable_by_all
from llm_chat.finetune.batches import (
    IGNORE,
    answer_logprobs,
    answer_loss,
    batched,
    collate,
    encode,
)
from mlstack.train import TrainConfig, distributed, fit
from mlstack.train.batching import to_device
from mlstack.train.device import run_options


def lora_model(model_dir: Path, lora: dict[str, Any], seed: int):
    """The model with fresh LoRA adapters, initialised from `seed` (their random init would
    otherwise take whatever state the process's RNG is in: a rerun would train differently)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mlstack.train import seed_everything

    seed_everything(seed)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    # `top_layers`: adapters on the last n layers only, so backward stops there (CPU budget).
    layers = model.config.num_hidden_layers
    top = lora.get("top_layers") or layers
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["targets"],
        layers_to_transform=list(range(layers - top, layers)),
    )
    return get_peft_model(model, config), tokenizer


def mean_answer_loss(model, batches: list[dict[str, torch.Tensor]]) -> float:
    """Token-weighted negative log-likelihood of the answers (its exp is the perplexity)."""
    total, tokens = 0.0, 0
    device = next(model.parameters()).device  # fit() may have moved it to a GPU
    with torch.inference_mode():
        for batch in batches:
            logp, count = answer_logprobs(model, to_device(batch, device))
            total, tokens = total - float(logp.sum()), tokens + int(count.sum())
    return total / max(tokens, 1)


def train_sft(
    base_dir: Path, train: list[dict], held_out: list[dict], out_dir: Path, p: dict[str, Any]
) -> dict[str, Any]:
    model, tokenizer = lora_model(base_dir, p["lora"], p["seed"])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def batches(rows: list[dict], shuffle: bool) -> list[dict[str, torch.Tensor]]:
        examples = [encode(tokenizer, r["prompt"], r["answer"], p["max_tokens"]) for r in rows]
        if shuffle:
            random.Random(p["seed"]).shuffle(examples)
        return [collate(b, pad) for b in batched(examples, p["batch_size"])]

    train_batches, eval_batches = batches(train, True), batches(held_out, False)
    config = TrainConfig(
        epochs=p["epochs"],
        lr=p["lr"],
        monitor="eval_loss",
        mode="min",
        patience=1,
        warmup_ratio=0.05,
        seed=p["seed"],
        **run_options(p),
    )
    train_batches = distributed.shard(train_batches)  # all of them in a single process
    result = fit(
        model,
        train_batches,
        loss_fn=answer_loss,
        evaluate=lambda m: {"eval_loss": mean_answer_loss(m, eval_batches)},
        config=config,
        weigh=answer_tokens,
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    save_merged(model, tokenizer, out_dir)
    return {
        "history": result.history,
        "best_epoch": result.best_epoch,
        "trainable_parameters": trainable,
        "seconds": round(result.seconds, 1),
    }


def answer_tokens(batch: dict) -> float:
    """What a causal LM's loss averages over: the labelled tokens after the shift (the first
    position predicts nothing), so micro-batches weigh by tokens, not rows."""
    return float((batch["labels"][:, 1:] != IGNORE).sum())


def save_merged(model, tokenizer, out_dir: Path) -> None:
    """The adapter, then the merged fp32 model on the CPU (what the server loads); rank 0 only."""
    if not distributed.context().is_main:
        return
    model.save_pretrained(out_dir / "adapter")
    model.to("cpu").merge_and_unload().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    readable_by_all(out_dir)  # served by the images' uid 10001
