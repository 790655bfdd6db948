"""The prepared GPU check (issue 17 item 7): three checks on CUDA, their figures printed as JSON.

1. `classifier_amp`: the image classifier's compact ResNet trained on scikit-learn's digits with
   mlstack.train.fit in mixed precision (bf16 where the GPU has it, else fp16 + GradScaler),
   eager and (on CUDA) torch.compile'd: seconds, images/s, validation accuracy, peak memory.
2. `lora_sft_step`: one LoRA SFT optimizer step (llm_chat.finetune.sft.train_sft) on the device.
3. `native_decode`: greedy decoding with the native LLM engine's backend on the device, its
   tokens/s, and how many greedy tokens match the same model decoded on the CPU in fp32.

The LLM checks use a tiny random Llama unless `--model` names a Hugging Face Llama folder (such as
models/llm_chat/base, SmolLM2-135M after `dvc repro llm_convert`).

    python scripts/gpu_check.py                      # on a GPU machine
    python scripts/gpu_check.py --device cpu --small # the same steps on the CPU (the CPU test)

Exit status: 0 every check ran; 1 a check failed (its `error` is in the JSON); 2 no CUDA GPU is
visible and no `--device cpu` was given: nothing ran, the JSON says why (CI machines have no GPU,
and 2 lets a caller tell "skipped" from "passed").
"""

import argparse
import contextlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

NEEDS_CUDA = 2


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (a dry run)")
    p.add_argument("--model", type=Path, help="a Hugging Face Llama folder (default: tiny, random)")
    p.add_argument("--epochs", type=int, default=5, help="classifier epochs")
    p.add_argument("--small", action="store_true", help="a few hundred images, 8 tokens (tests)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    return p.parse_args(argv)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def digits(image_size: int, limit: int | None):
    """scikit-learn's 8x8 digits upscaled to the classifier's input size, 3 channels."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x[:limit], dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    x = F.interpolate(x, size=image_size, mode="bilinear").repeat(1, 3, 1, 1)
    x = (x - x.mean()) / x.std()
    y = torch.tensor(y[:limit])
    cut = int(0.8 * len(y))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def cross_entropy(model, batch):
    import torch.nn.functional as F

    return F.cross_entropy(model(batch[0]), batch[1])


def classifier_amp(args: argparse.Namespace, device) -> dict:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from image_classifier.models import build_model
    from mlstack.train import TrainConfig, fit
    from mlstack.train.device import resolve_precision

    params = {"widths": [32, 64, 128], "blocks": [1, 1, 1], "dropout": 0.1}
    (x, y), (vx, vy) = digits(32, 160 if args.small else None)
    figures = {"train_images": len(y), "precision": resolve_precision("auto", device).name}
    # compile on the CPU needs a C++ toolchain and minutes of compilation: measured on CUDA only
    for mode in ("eager", "compile") if device.type == "cuda" else ("eager",):
        model = build_model("resnet", 10, params)

        def evaluate(m):
            logits = torch.cat(
                [m(vx[i : i + 256].to(device)).float().cpu() for i in range(0, len(vy), 256)]
            )
            return {"val_accuracy": float((logits.argmax(1) == vy).float().mean())}

        epochs = 1 if args.small else args.epochs
        config = TrainConfig(epochs=epochs, lr=0.003, patience=100, progress=False)
        config.device, config.compile = str(device), mode == "compile"
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
        start = time.perf_counter()
        result = fit(model, loader, loss_fn=cross_entropy, evaluate=evaluate, config=config)
        sync(device)
        seconds = time.perf_counter() - start
        figures[mode] = {
            "seconds": round(seconds, 2),
            "images_per_s": round(len(y) * len(result.history) / seconds, 1),
            "val_accuracy": round(result.best_score, 4),
            "epochs": len(result.history),
            "peak_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
            if device.type == "cuda"
            else None,
        }
    return figures


def llm_folder(args: argparse.Namespace, tmp: Path) -> Path:
    if args.model:
        return args.model
    from llm_chat.testing import save_tiny_llama

    return save_tiny_llama(tmp / "tiny-llama")


def lora_sft_step(args: argparse.Namespace, device, model_dir: Path, tmp: Path) -> dict:
    from llm_chat.finetune.sft import train_sft
    from mlstack.train.device import resolve_precision

    rows = [
        {"prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}], "answer": f"{2 * i}."}
        for i in range(4)
    ]
    lora = {"r": 8, "alpha": 16, "dropout": 0.0, "targets": ["q_proj", "v_proj"]}
    params = {"lora": lora, "lr": 1e-3, "epochs": 1, "batch_size": 4, "max_tokens": 64, "seed": 0}
    start = time.perf_counter()
    report = train_sft(model_dir, rows, rows, tmp / "sft", params | {"device": str(device)})
    return {
        "seconds": round(time.perf_counter() - start, 2),
        "steps": 1,
        "precision": resolve_precision("auto", device).name,
        "eval_loss": round(report["history"][0]["eval_loss"], 4),
        "trainable_parameters": report["trainable_parameters"],
    }


def greedy(model_dir: Path, device, prompt: list[int], tokens: int) -> tuple[list[int], float]:
    import torch

    from llm_chat.backends import NativeBackend

    # the native engine builds its tensors with the default device: this puts weights, KV cache
    # and every per-step tensor on `device` without a device argument threaded through it
    with torch.device(device):
        backend = NativeBackend(model_dir, slots=1, max_len=len(prompt) + tokens + 1)
        out = [int(backend.prefill(0, prompt).argmax())]
        sync(device)
        start = time.perf_counter()
        for i in range(tokens - 1):
            logits = backend.decode([out[-1]], [len(prompt) + i])
            out.append(int(logits.reshape(-1, logits.shape[-1])[0].argmax()))
        sync(device)
    return out, time.perf_counter() - start


def native_decode(args: argparse.Namespace, device, model_dir: Path) -> dict:
    import torch

    n = 8 if args.small else 64
    prompt = list(range(5, 25))
    tokens, seconds = greedy(model_dir, device, prompt, n)
    reference, _ = greedy(model_dir, torch.device("cpu"), prompt, n)
    same = next((i for i, (a, b) in enumerate(zip(tokens, reference, strict=True)) if a != b), n)
    return {
        "new_tokens": n,
        "decode_tokens_per_s": round((n - 1) / seconds, 1),
        "greedy_tokens_equal_to_cpu_fp32": same,  # leading tokens identical to the CPU run
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        reason = "needs a CUDA GPU and torch sees none; --device cpu runs the same steps on the CPU"
        print(json.dumps({"status": "skipped", "reason": reason}))
        return NEEDS_CUDA
    device = torch.device(args.device)
    figures: dict = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        figures["gpu"] = torch.cuda.get_device_name(device)
    failed = False
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        checks = {
            "classifier_amp": lambda: classifier_amp(args, device),
            "lora_sft_step": lambda: lora_sft_step(args, device, llm_folder(args, tmp), tmp),
            "native_decode": lambda: native_decode(args, device, llm_folder(args, tmp)),
        }
        for check, run in checks.items():
            try:
                # progress lines go to stderr: stdout carries the JSON only
                with contextlib.redirect_stdout(sys.stderr):
                    figures[check] = run()
            except Exception as error:  # one broken check must not hide the others' figures
                failed = True
                figures[check] = {"error": f"{type(error).__name__}: {error}"}
                traceback.print_exc(file=sys.stderr)
    figures["status"] = "failed" if failed else "ok"
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
