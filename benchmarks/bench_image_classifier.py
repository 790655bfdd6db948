"""Images/s of the image classifier: PyTorch fp32 eager vs ONNX Runtime fp32 and INT8.

One run, same thread count, same test images, batch 1 (latency) and batch 32 (throughput).
Prints a table and writes reports/image_classifier/benchmark.json. Needs `dvc repro` first.

    python benchmarks/bench_image_classifier.py --threads 2 --model resnet
"""

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False)


@app.command()
def main(
    model: Annotated[str, typer.Option(help="resnet | efficientnet | champion")] = "champion",
    threads: Annotated[int, typer.Option(min=1)] = 2,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    runs: Annotated[int, typer.Option(min=10, help="Batch-1 latency samples.")] = 500,
    seconds: Annotated[float, typer.Option(help="Minimum time per throughput measurement.")] = 5.0,
    out: Path = Path("reports/image_classifier/benchmark.json"),
) -> None:
    from image_classifier.export import load_trained
    from image_classifier.optimize import _arrays, build_variants
    from mlstack.quantize import compare_variants

    models = Path("models/image_classifier")
    if model == "champion":
        model = json.loads((models / "champion.json").read_text())["champion"]
    _, card = load_trained(models / model)
    x, y = _arrays(Path("data/image_classifier"), "test", card)
    report = compare_variants(
        build_variants(models / model, threads),
        x,
        lambda logits: float((logits.argmax(1) == y).mean()),
        metric="accuracy",
        threads=threads,
        batch_size=batch_size,
        latency_runs=runs,
        min_seconds=seconds,
    )
    report["model"] = model
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"{model}, {threads} threads, {report['samples']} test images")
    print(
        f"{'variant':<12}{'img/s b1':>10}{'img/s b' + str(batch_size):>11}{'x b1':>7}"
        f"{'x b' + str(batch_size):>7}{'acc':>8}{'MB':>7}"
    )
    for name, v in report["variants"].items():
        print(
            f"{name:<12}{1000 / v['latency_ms_p50']:>10.0f}{v['throughput_per_s']:>11.0f}"
            f"{v['speedup_batch1']:>7.2f}{v[f'speedup_batch{batch_size}']:>7.2f}"
            f"{v['accuracy']:>8.4f}{v['size_bytes'] / 1e6:>7.2f}"
        )


if __name__ == "__main__":
    app()
