"""Prompt + answer -> token batches with the loss on answer tokens only, and the per-example
answer log-probability that DPO and the evaluation use."""

import torch
import torch.nn.functional as F

IGNORE = -100


def encode(tokenizer, prompt: list[dict], answer: str, max_tokens: int) -> tuple[list[int], int]:
    """Token ids of the chat-formatted prompt, the answer and the end-of-turn token; and where
    the answer starts. Long examples are cut at `max_tokens` (the answer's end goes first)."""
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True)
    tail = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return (head + tail)[:max_tokens], len(head)


def collate(examples: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids and attention_mask, and labels that ignore prompt and padding."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE)
    for row, (ids, start) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        labels[row, start : len(ids)] = torch.tensor(ids[start:])
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def answer_logprobs(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of log p(answer token) per example, and the answer's token count.

    Logits are computed from the position before the batch's earliest answer token on: the
    prompt positions before it predict nothing that is scored, and the vocabulary projection
    (49k columns here) plus its log-softmax are a large share of a small model's step."""
    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE
    scored = keep.any(0).nonzero()
    first = int(scored[0]) if len(scored) else labels.shape[1] - 1
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        logits_to_keep=batch["input_ids"].shape[1] - first,
    ).logits
    labels, keep = labels[:, first:], keep[:, first:]
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * keep).sum(-1), keep.sum(-1)


def answer_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean negative log-likelihood over the batch's answer tokens: what a causal LM's own
    loss with `labels` computes, with the logits cut as in `answer_logprobs`."""
    logp, count = answer_logprobs(model, batch)
    return -logp.sum() / count.sum().clamp(min=1)


def batched(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
