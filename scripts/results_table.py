"""Renders the README's results block from the files the pipeline writes (never typed by hand).

python scripts/results_table.py              # print the markdown
python scripts/results_table.py --write README.md   # replace the block between the markers
"""

import argparse
import json
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"
REPORTS, MODELS = Path("reports/image_classifier"), Path("models/image_classifier")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def image_classifier() -> str:
    champion = load(MODELS / "champion.json")["champion"]
    lines = [
        "**Image classifier** (digits, 270 held-out test images; champion picked on validation: "
        f"`{champion}`; from `reports/image_classifier/*/metrics.json` and `quantize.json`)",
        "",
        "| model | test acc | macro-F1 | ECE | ONNX INT8 acc | INT8 size | INT8 vs torch b1 "
        "| INT8 vs torch b32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("resnet", "efficientnet"):
        m, q = load(REPORTS / name / "metrics.json"), load(REPORTS / name / "quantize.json")
        int8, b = q["variants"]["onnx_int8"], q["batch_size"]
        lines.append(
            f"| {name} | {m['accuracy']:.2%} | {m['macro_f1']:.4f} | {m['ece']:.3f} "
            f"| {int8['accuracy']:.2%} | {int8['size_bytes'] / 1e6:.2f} MB "
            f"| {int8['speedup_batch1']:.2f}x | {int8[f'speedup_batch{b}']:.2f}x |"
        )
    lines += [
        "",
        f"Speed-ups: same {q['threads']} threads, batch 1 latency p50 and batch {b} "
        "throughput, ONNX Runtime INT8 against PyTorch fp32 eager.",
    ]
    bench = REPORTS / "benchmark.json"
    if bench.exists():
        r = load(bench)
        b = r["batch_size"]
        lines += [
            "",
            f"`make bench` ({r['model']}, {r['threads']} threads):",
            "",
            f"| variant | images/s b1 | images/s b{b} | accuracy |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {n} | {1000 / v['latency_ms_p50']:.0f} | {v['throughput_per_s']:.0f} "
            f"| {v['accuracy']:.2%} |"
            for n, v in r["variants"].items()
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="a README with the results markers")
    args = parser.parse_args()
    block = image_classifier()
    if not args.write:
        print(block)
        return
    text = args.write.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    args.write.write_text(f"{head}{START}\n{block}\n{END}{tail}")


if __name__ == "__main__":
    main()
