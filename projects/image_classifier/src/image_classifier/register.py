"""Register stage: every trained model becomes an MLflow model version; the best on validation
accuracy gets the `champion` alias, and `champion.json` tells the service which files to serve."""

import json
from pathlib import Path

from mlstack.train.tracking import register_model, set_champion

REGISTERED_NAME = "image-classifier-digits"


def register(models_root: Path, names: list[str], *, track: bool = True) -> dict:
    cards = {n: json.loads((models_root / n / "card.json").read_text()) for n in names}
    # validation, never test, picks the champion: the test set stays an unbiased estimate
    champion = max(names, key=lambda n: (cards[n]["val_accuracy"], -names.index(n)))
    versions = {}
    if track:
        for name in names:
            run_id = cards[name]["mlflow_run_id"]
            versions[name] = register_model(run_id, "model", REGISTERED_NAME, tags={"family": name})
        set_champion(REGISTERED_NAME, versions[champion])
    result = {
        "registered_model": REGISTERED_NAME,
        "champion": champion,
        "champion_version": versions.get(champion),
        "onnx": str(models_root / champion / "model.int8.onnx"),
        "onnx_fp32": str(models_root / champion / "model.onnx"),
        "val_accuracy": {n: cards[n]["val_accuracy"] for n in names},
    }
    (models_root / "champion.json").write_text(json.dumps(result, indent=2))
    return result
