"""A Hugging Face folder -> an OpenVINO IR folder for the openvino backend (optimum-intel + NNCF
weight compression), with the tokenizer copied beside it so the folder serves on its own.

`weights`: int8 (per-channel, asymmetric: the default, within 1% of fp32 perplexity here), int4
(group-wise symmetric, `group_size` columns share a scale: smaller and a little faster, at a
perplexity cost reported by quality.py) or fp32 (exact; used by the tests).

DVC stages `llm_export_openvino@int8|int4` (the base model) and `llm_export_openvino_tuned@sft|dpo`
(int8): `python -m llm_chat.ov_export MODEL OUT --weights int8`."""

import json
import shutil
import time
from pathlib import Path

WEIGHTS = ("int8", "int4", "fp32")


def export(model_dir: str | Path, out: str | Path, *, weights: str = "int8",
           group_size: int = 64) -> dict:  # fmt: skip
    from optimum.intel import OVModelForCausalLM, OVWeightQuantizationConfig
    from transformers import AutoTokenizer

    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    started = time.perf_counter()
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    if weights == "fp32":
        options = {"load_in_8bit": False}
    elif weights == "int8":
        options = {"quantization_config": OVWeightQuantizationConfig(bits=8)}
    else:
        options = {"quantization_config": OVWeightQuantizationConfig(
            bits=4, group_size=group_size, sym=True)}  # fmt: skip
    model = OVModelForCausalLM.from_pretrained(model_dir, export=True, compile=False, **options)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    report = {"source": str(model_dir), "weights": weights,
              "group_size": group_size if weights == "int4" else None,
              "ir_mb": round((out / "openvino_model.bin").stat().st_size / 2**20, 1),
              "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    (out / "export.json").write_text(json.dumps(report, indent=2))
    return report


def main() -> None:
    import argparse

    from mlstack.params import load_section

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--weights", choices=WEIGHTS, default="int8")
    args = parser.parse_args()
    group_size = load_section("llm_chat").get("openvino", {}).get("group_size", 64)
    print(json.dumps(export(args.model_dir, args.out, weights=args.weights,
                            group_size=group_size), indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
