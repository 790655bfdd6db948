"""The tokenizer clean-up converters need (byte_level.py), on the tiny Llama's byte-level BPE
dressed as transformers writes SmolLM2's after the GGUF round trip: SentencePiece decoder steps,
byte_fallback and a BOS on every encoding."""

import json
import shutil

import pytest
from tokenizers import Tokenizer

from llm_chat.byte_level import byte_level_copy, cleaned_spec

ROUND_TRIP_DECODER = {
    "type": "Sequence",
    "decoders": [
        {"type": "ByteFallback"},
        {"type": "Fuse"},
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    ],
}
BOS = {
    "type": "TemplateProcessing",
    "single": [
        {"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
        {"Sequence": {"id": "A", "type_id": 0}},
    ],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {
        "<|im_start|>": {"id": "<|im_start|>", "ids": [0], "tokens": ["<|im_start|>"]}
    },
}


@pytest.fixture
def round_tripped(tiny_llama, tmp_path):
    folder = shutil.copytree(tiny_llama, tmp_path / "model")
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["decoder"], spec["post_processor"] = ROUND_TRIP_DECODER, BOS
    spec["model"]["byte_fallback"] = True
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "add_bos_token": True}))
    return folder


def test_the_copy_drops_the_no_op_steps_and_encodes_the_same(round_tripped, tmp_path):
    out = byte_level_copy(round_tripped, tmp_path / "clean")
    spec = json.loads((out / "tokenizer.json").read_text())
    assert spec["decoder"]["type"] == "ByteLevel" and spec["model"]["byte_fallback"] is False
    before = Tokenizer.from_file(str(round_tripped / "tokenizer.json"))
    after = Tokenizer.from_file(str(out / "tokenizer.json"))
    text = "Grüße, 東京! x² 🙂"
    assert after.encode(text).ids == before.encode(text).ids  # the BOS kept: bos=True
    assert after.decode(before.encode(text).ids) == before.decode(before.encode(text).ids)


def test_a_converters_copy_encodes_without_the_bos(round_tripped, tmp_path):
    out = byte_level_copy(round_tripped, tmp_path / "clean", bos=False)
    before = Tokenizer.from_file(str(round_tripped / "tokenizer.json")).encode("Paris")
    after = Tokenizer.from_file(str(out / "tokenizer.json")).encode("Paris")
    assert before.ids == [0, *after.ids]
    assert json.loads((out / "tokenizer_config.json").read_text())["add_bos_token"] is False


def test_steps_that_are_not_no_ops_are_refused(round_tripped, tmp_path):
    """A vocabulary holding "▁" is not byte-level only: dropping Replace would change text."""
    spec = json.loads((round_tripped / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    vocab["▁sea"] = max(vocab.values()) + 1
    (round_tripped / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="changes how"):
        byte_level_copy(round_tripped, tmp_path / "clean")


def test_a_clean_tokenizer_is_left_alone(tiny_llama, tmp_path):
    assert cleaned_spec(json.loads((tiny_llama / "tokenizer.json").read_text())) is None
    assert byte_level_copy(tiny_llama, tmp_path / "clean") == tiny_llama
