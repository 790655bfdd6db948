"""ov_export: several formats of one model from one conversion are the formats exported alone."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("openvino_genai")
pytest.importorskip("optimum.intel")


def test_formats_from_one_conversion_equal_each_format_exported_alone(
    tiny_llama, tiny_ov, tmp_path
):
    from llm_chat.ov_export import export, export_many

    alone = tmp_path / "alone-int8"
    export(tiny_llama, alone, weights="int8")
    together = {tmp_path / "int8": "int8", tmp_path / "fp32": "fp32"}
    reports = export_many(tiny_llama, together, group_size=64)

    assert [r["weights"] for r in reports] == ["int8", "fp32"]
    int8, fp32 = (folder / "openvino_model.bin" for folder in together)
    assert int8.read_bytes() == (alone / "openvino_model.bin").read_bytes()
    assert fp32.read_bytes() == (tiny_ov / "openvino_model.bin").read_bytes()
    assert int8.stat().st_size < fp32.stat().st_size
    for folder in together:  # each folder serves on its own
        assert (folder / "openvino_detokenizer.xml").exists()
        assert (folder / "tokenizer.json").exists()
        assert json.loads((folder / "export.json").read_text())["source"] == str(tiny_llama)


def test_cli_refuses_an_unknown_format_before_converting(tiny_llama, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "llm_chat.ov_export", "--job", str(tiny_llama), "out", "int3"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 2
    assert "int3" in run.stderr
    assert not (tmp_path / "out").exists()
