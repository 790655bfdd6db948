"""A Hugging Face folder -> an OpenVINO IR folder for the openvino backend (optimum-intel + NNCF
weight compression), with the tokenizer copied beside it so the folder serves on its own, and
OpenVINO's tokenizer and detokenizer models: GenAI reads the vocabulary from the detokenizer for
structured output (`response_format`, tool calls).

`weights`: int8 (per-channel, asymmetric: the default, within 1% of fp32 perplexity here), int4
(group-wise symmetric, `group_size` columns share a scale: smaller and a little faster, at a
perplexity cost reported by quality.py) or fp32 (exact; used by the tests).

DVC stages `llm_export_openvino` (the base model, int8 and int4: one conversion) and
`llm_export_openvino_tuned` (sft and dpo, int8): `python -m llm_chat.ov_export MODEL OUT --weights
int8`, or several exports in one process with `--job MODEL OUT WEIGHTS` repeated."""

import json
import shutil
import time
from pathlib import Path

from llm_chat.convert import readable_by_all

WEIGHTS = ("int8", "int4", "fp32")


def export(
    model_dir: str | Path, out: str | Path, *, weights: str = "int8", group_size: int = 64
) -> dict:
    return export_many(model_dir, {Path(out): weights}, group_size=group_size)[0]


def export_many(
    model_dir: str | Path, outs: dict[Path, str], *, group_size: int = 64
) -> list[dict]:
    """One IR folder per `outs` entry (folder -> weights), the model converted once: the
    PyTorch-to-OpenVINO conversion and the imports are most of an export's time (13 and 11 s of
    ~38 on 2 cores); each weight format then compresses the converted IR."""
    import tempfile

    from optimum.intel import OVModelForCausalLM

    for weights in outs.values():
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    started = time.perf_counter()
    reports = []
    with tempfile.TemporaryDirectory() as scratch:
        # One format: convert and compress in one call. Several: convert once to an fp32 IR in
        # `scratch`, then load and compress it per format.
        source, convert = Path(model_dir), len(outs) == 1
        if not convert:
            converted = OVModelForCausalLM.from_pretrained(
                source, export=True, compile=False, load_in_8bit=False
            )
            converted.save_pretrained(scratch)
            source = Path(scratch)
        for out, weights in outs.items():
            out = Path(out)
            if out.exists():
                shutil.rmtree(out)
            model = OVModelForCausalLM.from_pretrained(
                source, export=convert, compile=False, **_weight_options(weights, group_size)
            )
            model.save_pretrained(out)
            reports.append(_finish(model_dir, out, weights, group_size, started))
            started = time.perf_counter()
    return reports


def _weight_options(weights: str, group_size: int) -> dict:
    from optimum.intel import OVWeightQuantizationConfig

    if weights == "fp32":
        return {"load_in_8bit": False}
    if weights == "int8":
        return {"quantization_config": OVWeightQuantizationConfig(bits=8)}
    return {
        "quantization_config": OVWeightQuantizationConfig(bits=4, group_size=group_size, sym=True)
    }


def _finish(model_dir, out: Path, weights: str, group_size: int, started: float) -> dict:
    """The tokenizer files beside the IR, and export.json."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    export_tokenizer(out)
    report = {
        "source": str(model_dir),
        "weights": weights,
        "group_size": group_size if weights == "int4" else None,
        "ir_mb": round((out / "openvino_model.bin").stat().st_size / 2**20, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "export.json").write_text(json.dumps(report, indent=2))
    readable_by_all(out)
    return report


def export_tokenizer(folder: str | Path) -> None:
    """openvino_tokenizer.xml + openvino_detokenizer.xml from `folder`'s tokenizer.json (its
    SentencePiece no-op steps dropped first, see byte_level.py)."""
    import tempfile

    import openvino as ov
    from openvino_tokenizers import convert_tokenizer
    from transformers import AutoTokenizer

    from llm_chat.byte_level import byte_level_copy

    folder = Path(folder)
    with tempfile.TemporaryDirectory() as scratch:
        source = byte_level_copy(folder, scratch)
        tokenizer, detokenizer = convert_tokenizer(
            AutoTokenizer.from_pretrained(source), with_detokenizer=True
        )
    ov.save_model(tokenizer, folder / "openvino_tokenizer.xml")
    ov.save_model(detokenizer, folder / "openvino_detokenizer.xml")


def main() -> None:
    import argparse

    from mlstack.params import load_section

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir", type=Path, nargs="?")
    parser.add_argument("out", type=Path, nargs="?", help="the IR folder to write")
    parser.add_argument("--weights", choices=WEIGHTS, default="int8")
    parser.add_argument(
        "--job",
        nargs=3,
        action="append",
        default=[],
        metavar=("MODEL", "OUT", "WEIGHTS"),
        help="one export of several in this process (repeatable; each model converted once)",
    )
    parser.add_argument(
        "--tokenizer-only",
        action="store_true",
        help="add the OpenVINO tokenizer models to the export in model_dir",
    )
    args = parser.parse_args()
    if args.tokenizer_only:
        if args.model_dir is None:
            parser.error("model_dir is required with --tokenizer-only")
        export_tokenizer(args.model_dir)
        return
    jobs: dict[Path, dict[Path, str]] = {}
    if args.model_dir is not None:
        if args.out is None:
            parser.error("out is required unless --tokenizer-only")
        jobs[args.model_dir] = {args.out: args.weights}
    for model, out, weights in args.job:
        if weights not in WEIGHTS:
            parser.error(f"--job weights must be one of {WEIGHTS}, got {weights!r}")
        jobs.setdefault(Path(model), {})[Path(out)] = weights
    if not jobs:
        parser.error("give MODEL OUT, or one --job MODEL OUT WEIGHTS or more")
    group_size = load_section("llm_chat").get("openvino", {}).get("group_size", 64)
    for model, outs in jobs.items():
        for report in export_many(model, outs, group_size=group_size):
            print(json.dumps(report, indent=2), flush=True)


if __name__ == "__main__":
    main()
