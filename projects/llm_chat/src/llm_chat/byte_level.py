"""SmolLM2's tokenizer as converters expect it. transformers, loading the packaged GGUF, writes a
byte-level BPE tokenizer.json with SentencePiece's decoder steps (ByteFallback, Fuse, Replace of
"▁") and `byte_fallback: true`. On a byte-level vocabulary (no "▁" in its tokens, no <0xNN> byte
tokens) they change nothing, but converters read them as a SentencePiece model:
openvino_tokenizers fails on the steps, and llama.cpp's convert_hf_to_gguf.py writes a
SentencePiece ("llama") vocabulary whose tokenizer then aborts on the first byte it looks up.

`byte_level_copy` writes the tokenizer files without them, after checking that every token, 500
random sequences and a multilingual text decode and encode the same.

The round trip also made every encoding start with <|im_start|> (`add_bos_token`, a template
post-processor), which the GGUF itself does not do (its add_bos_token is false). For llama.cpp's
converter, which reads the pre-tokenizer's identity from how it encodes a test text (without the
leading token: SmolLM's known hash), the CLI's copy encodes without it too; the GGUF's metadata
then says not to add one, as the packaged GGUF does.

    python -m llm_chat.byte_level MODEL_DIR OUT   # a converter's input: OUT links MODEL_DIR's
                                                  # other files, beside the cleaned tokenizer
"""

import json
import random
import shutil
from pathlib import Path

NO_OPS = {"ByteFallback", "Fuse", "Replace"}
SAMPLE = "Grüße, 東京! naïve café — x² ≥ 3 · 🙂 \t tabs\nand lines "


def cleaned_spec(spec: dict) -> dict | None:
    """`spec` (a tokenizer.json) without the no-op steps; None when it has none to drop."""
    decoder = spec.get("decoder") or {}
    steps = decoder.get("decoders", []) if decoder.get("type") == "Sequence" else []
    kept = [d for d in steps if d["type"] not in NO_OPS]
    if not (steps and len(kept) == 1 and kept[0]["type"] == "ByteLevel"):
        return None
    return {**spec, "decoder": kept[0], "model": {**spec["model"], "byte_fallback": False}}


def byte_level_copy(folder: str | Path, out: str | Path, *, bos: bool = True) -> Path:
    """`out` with `folder`'s tokenizer files, cleaned (and with `bos=False`, encoding without a
    leading BOS); `folder` itself when nothing needs changing."""
    from tokenizers import Tokenizer

    folder, out = Path(folder), Path(out)
    spec = json.loads((folder / "tokenizer.json").read_text())
    cleaned = cleaned_spec(spec)
    if cleaned is None and bos:
        return folder
    cleaned = cleaned or spec
    out.mkdir(parents=True, exist_ok=True)
    for f in folder.glob("*.json"):
        if f.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(f, out / f.name)
    if not bos:
        cleaned = {**cleaned, "post_processor": None}
        config = json.loads((out / "tokenizer_config.json").read_text())
        (out / "tokenizer_config.json").write_text(json.dumps({**config, "add_bos_token": False}))
    (out / "tokenizer.json").write_text(json.dumps(cleaned))
    _same_tokenizer(
        Tokenizer.from_file(str(folder / "tokenizer.json")),
        Tokenizer.from_file(str(out / "tokenizer.json")),
    )
    return out


def _same_tokenizer(original, cleaned) -> None:
    """Every token alone and random sequences decode the same, a text encodes the same: else
    refuse (the steps were not no-ops for this vocabulary)."""
    n = original.get_vocab_size()
    rng = random.Random(0)
    cases = [[i] for i in range(n)] + [[rng.randrange(n) for _ in range(32)] for _ in range(500)]
    for ids in cases:
        if original.decode(ids, skip_special_tokens=False) != cleaned.decode(
            ids, skip_special_tokens=False
        ):
            raise ValueError(f"dropping the decoder's no-op steps changes how {ids} decode")
    # the text's own tokens: a leading BOS is the post-processor's, dropped on purpose
    if (
        original.encode(SAMPLE, add_special_tokens=False).ids
        != cleaned.encode(SAMPLE, add_special_tokens=False).ids
    ):
        raise ValueError("dropping byte_fallback changes how text encodes")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out", type=Path, help="a new folder: links + the cleaned tokenizer")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    byte_level_copy(args.model_dir, args.out, bos=False)
    for f in args.model_dir.iterdir():  # the rest as links: the weights are not copied
        if not (args.out / f.name).exists():
            (args.out / f.name).symlink_to(f.resolve())
    print(args.out)


if __name__ == "__main__":
    main()
