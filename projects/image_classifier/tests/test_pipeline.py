"""Stage functions (pipeline.py): what they hand to the library code."""

import json

from image_classifier import pipeline


def test_register_stage_counts_a_model_without_a_behaviour_report_as_failed(tmp_path, monkeypatch):
    import image_classifier.params
    import image_classifier.register

    (tmp_path / "resnet").mkdir()
    passed = {"passed": True, "failed": []}
    (tmp_path / "resnet" / "behaviour.json").write_text(json.dumps(passed))
    monkeypatch.setattr(pipeline, "REPORTS", tmp_path)
    monkeypatch.setattr(
        image_classifier.params, "load_params", lambda: {"promotion": {"min_gain": 0.005}}
    )
    seen = {}
    monkeypatch.setattr(
        image_classifier.register, "register", lambda *a, **kw: seen.update(kw) or {}
    )
    pipeline.register_stage(["resnet", "efficientnet"])
    assert seen["behaviour"]["resnet"] == passed
    assert not seen["behaviour"]["efficientnet"]["passed"]  # no report: never promoted
    assert seen["behaviour"]["efficientnet"]["failed"] == [
        "no behaviour report (image-classifier behaviour)"
    ]
