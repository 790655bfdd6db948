"""ic_quantize chooses the INT8 stem on the validation split (issue 16 item 3): the rule, and
that only validation data reaches it."""

import json

import pytest

from image_classifier.optimize import _arrays, choose_scheme


@pytest.fixture(scope="module")
def arrays(tiny_model_dir, digits_dir):
    card = json.loads((tiny_model_dir / "card.json").read_text())
    train_x, _ = _arrays(digits_dir, "train", card)
    return train_x[:64], _arrays(digits_dir, "val", card)


def choose(tiny_model_dir, tmp_path, arrays, **params):
    base = {"per_channel": True, "threads": 1, "keep_stem_fp32": "auto", "max_val_drop": 0.005}
    out = tmp_path / "model.int8.onnx"
    decision = choose_scheme(tiny_model_dir / "model.onnx", out, *arrays, base | params)
    assert out.exists()
    return decision


def test_auto_scores_both_on_validation_and_keeps_the_stem_fp32_only_past_the_drop(
    tiny_model_dir, tmp_path, arrays
):
    lenient = choose(tiny_model_dir, tmp_path, arrays, max_val_drop=1.0)
    assert lenient["split"] == "val" and lenient["keep_stem_fp32"] is False
    assert set(lenient["int8_val_accuracy"]) == {"stem_fp32_false", "stem_fp32_true"}
    # a drop that no INT8 model can stay under (negative): the stem stays fp32
    strict = choose(tiny_model_dir, tmp_path, arrays, max_val_drop=-1.0)
    assert strict["keep_stem_fp32"] is True


def test_a_pinned_setting_is_kept_and_still_scored_on_validation(tiny_model_dir, tmp_path, arrays):
    pinned = choose(tiny_model_dir, tmp_path, arrays, keep_stem_fp32=True)
    assert pinned["keep_stem_fp32"] is True and list(pinned["int8_val_accuracy"]) == [
        "stem_fp32_true"
    ]
