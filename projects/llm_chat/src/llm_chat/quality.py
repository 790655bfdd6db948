"""What each backend and precision costs in quality, against the fp32 Hugging Face model:

- perplexity on held-out Wikipedia summaries (articles after the fine-tuning train and eval
  splits of `llm_chat.data`, so no model here was tuned on them), full-sequence forward passes;
- greedy agreement: held-out questions answered greedily through each *engine* as the server
  runs it (batching, KV cache precision and all), compared with fp32 HF `generate`.

Every backend and precision for the base model, both checks; for the fine-tuned ones, the
perplexity of fp32 and of each of their OpenVINO exports that exists, at the served precision
(their engines are the base model's code: its greedy check covers them). DVC stage `llm_quality` ->
reports/llm_chat/quality.json. The default backend must stay within 3% of fp32 perplexity
(`default_within_3pct`)."""

import asyncio
import json
import math
import random
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

ROOT = Path("models/llm_chat")
OUT = Path("reports/llm_chat/quality.json")
DEFAULT = "openvino-int8"  # the service's default backend


def held_out(data: dict[str, Any], n: int) -> list[dict[str, str]]:
    """The articles after llm_data's train and eval splits (same filter, seed and shuffle)."""
    from mlstack.datasets import sentences, wiki_summaries

    articles = [a for a in wiki_summaries() if len(sentences(a["extract"])) >= 2]
    random.Random(data["seed"]).shuffle(articles)
    start = data["train_articles"] + data["eval_articles"]
    return articles[start : start + n]


def perplexity(logits_of, texts: list[list[int]]) -> float:
    """exp(mean next-token NLL) over all texts; `logits_of(ids) -> (len(ids), vocab)`."""
    nll, count = 0.0, 0
    for ids in texts:
        logits = logits_of(ids)[:-1].float()
        nll += float(
            torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum")
        )
        count += len(ids) - 1
    return math.exp(nll / count)


def hf_logits(model):
    @torch.inference_mode()
    def run(ids: list[int]) -> torch.Tensor:
        return model(torch.tensor([ids])).logits[0]

    return run


def ov_logits(ov_dir: Path, precision: str, threads: int):
    """The exported IR through optimum-intel (the pipeline gives no logits); the same IR and CPU
    plugin precision as the engine, without its u8 KV cache (the greedy check covers that)."""
    from optimum.intel import OVModelForCausalLM

    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision}
    model = OVModelForCausalLM.from_pretrained(ov_dir, ov_config=config, compile=True)

    def run(ids: list[int]) -> torch.Tensor:
        ones = torch.ones(1, len(ids), dtype=torch.long)
        return torch.as_tensor(model(input_ids=torch.tensor([ids]), attention_mask=ones).logits[0])

    return run


def engine_answers(engine, prompts: list[list[int]], tokens: int) -> list[str]:
    from llm_chat.sampling import SamplingParams

    params = SamplingParams(max_tokens=tokens, temperature=0)

    async def one(prompt: list[int]) -> str:
        return "".join([d.text async for d in engine.stream(prompt, params)])

    async def run() -> list[str]:
        return await asyncio.gather(*[one(p) for p in prompts])

    try:
        return asyncio.run(run())
    finally:
        engine.stop()


def agreement(answers: list[str], reference: list[str]) -> dict[str, float]:
    def common(a: str, b: str) -> int:
        return next(
            (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
        )

    pairs = list(zip(answers, reference, strict=True))
    return {
        "identical": round(sum(a == r for a, r in pairs) / len(pairs), 3),
        "first_24_chars": round(sum(a[:24] == r[:24] for a, r in pairs) / len(pairs), 3),
        "common_prefix": round(
            sum(common(a, r) / max(1, len(r)) for a, r in pairs) / len(pairs), 3
        ),
    }


@torch.inference_mode()
def hf_greedy(model, tokenizer, prompts: list[list[int]], tokens: int) -> list[str]:
    """fp32 HF `generate`, greedy, all prompts in one left-padded batch (one at a time was a
    third of the stage; the masked pads leave each prompt's logits as they were)."""
    pad = tokenizer.eos_token_id
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    out = model.generate(
        ids, attention_mask=mask, max_new_tokens=tokens, do_sample=False, pad_token_id=pad
    )
    return [tokenizer.decode(row[width:], skip_special_tokens=True) for row in out]


def evaluate(
    model_dir: Path,
    variants: dict[str, Path],
    p: dict[str, Any],
    data: dict[str, Any],
    *,
    every_backend: bool = True,
) -> dict[str, Any]:
    """`variants`: OpenVINO export name (openvino-int8, ...) -> folder. `every_backend` False:
    fp32 and the served rows only (each variant at the served precision), perplexity only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_chat.backends import load_backend, stop_tokens
    from llm_chat.engine import Engine
    from llm_chat.finetune.data import QUESTIONS
    from llm_chat.ov_config import DEFAULT_PRECISION, load_pipeline
    from llm_chat.ov_engine import OVEngine

    torch.set_num_threads(p["threads"])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    articles = held_out(data, p["held_out_articles"])
    texts = [tokenizer(a["extract"])["input_ids"][: p["max_tokens"]] for a in articles]
    texts = [t for t in texts if len(t) > 8]
    questions = [
        QUESTIONS[i % len(QUESTIONS)].format(title=a["title"])
        for i, a in enumerate(articles[: p["greedy_prompts"]])
    ]
    chats = [[{"role": "user", "content": q}] for q in questions]
    prompts = [tokenizer.apply_chat_template(c, add_generation_prompt=True) for c in chats]
    eos, n = stop_tokens(model_dir, tokenizer), p["greedy_tokens"]  # the server's
    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    reference = hf_greedy(hf, tokenizer, prompts, n) if every_backend else []
    rows: dict[str, dict[str, Any]] = {}

    def row(name: str, logits_of=None, engine=None) -> None:
        started, r = time.perf_counter(), {}
        if logits_of is not None:
            r["perplexity"] = round(perplexity(logits_of, texts), 3)
        if engine is not None:
            r["greedy_vs_fp32"] = agreement(engine_answers(engine, prompts, n), reference)
        r["seconds"] = round(time.perf_counter() - started, 1)
        rows[name] = r
        print(name, r, flush=True)

    row("hf-fp32", hf_logits(hf))
    slots = len(prompts)
    if every_backend:
        native = {"slots": slots, "max_len": 512, "threads": p["threads"]}
        # the backends load on their engine's thread (see Engine)
        row(
            "native",
            engine=Engine(partial(load_backend, "native", model_dir, **native), tokenizer, eos=eos),
        )
        quantized = torch.ao.quantization.quantize_dynamic(  # native-int8's scheme, on HF's
            hf, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, torch.qint8
        )
        row(
            "native-int8",
            hf_logits(quantized),
            Engine(partial(load_backend, "native-int8", model_dir, **native), tokenizer, eos=eos),
        )
    precisions = p["precisions"] if every_backend else [DEFAULT_PRECISION]
    for name, folder in variants.items():
        for precision in precisions:  # the row named as the backend is what it serves
            label = name + ("" if precision == DEFAULT_PRECISION else f" ({precision} compute)")
            engine = None
            if every_backend:
                model = load_pipeline(
                    folder, slots=slots, max_len=512, threads=p["threads"], precision=precision
                )
                engine = OVEngine(model, tokenizer, eos=eos, max_queue=slots)
            row(label, ov_logits(folder, precision, p["threads"]), engine)
    base = rows["hf-fp32"]["perplexity"]
    for r in rows.values():
        if "perplexity" in r:
            r["perplexity_vs_fp32"] = round(r["perplexity"] / base - 1, 4)
    return {
        "texts": len(texts),
        "tokens": sum(map(len, texts)),
        "greedy_prompts": len(prompts) if every_backend else 0,
        "greedy_tokens": n,
        "reference": reference[:4],
        "rows": rows,
    }


def quality_stage(params: dict[str, Any]) -> dict[str, Any]:
    p = params["quality"]
    report: dict[str, Any] = {}
    for name in ("base", "sft", "dpo"):
        model_dir = ROOT / name
        prefix = "openvino" if name == "base" else f"openvino-{name}"
        variants = {f"openvino-{w}": ROOT / f"{prefix}-{w}" for w in ("int8", "int4")}
        variants = {k: v for k, v in variants.items() if (v / "openvino_model.xml").exists()}
        if (model_dir / "config.json").exists() and variants:
            # The fine-tuned models: what serving them costs (their int8 export as served); the
            # comparison of every backend and precision is the base model's.
            report[name] = evaluate(
                model_dir, variants, p, params["data"], every_backend=name == "base"
            )
    default = report["base"]["rows"][DEFAULT]
    report["default"] = {
        "backend": DEFAULT,
        "perplexity_vs_fp32": default["perplexity_vs_fp32"],
        "within_3pct": abs(default["perplexity_vs_fp32"]) <= 0.03,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return report


if __name__ == "__main__":
    from mlstack.params import load_section

    print(json.dumps(quality_stage(load_section("llm_chat"))["default"], indent=2))
