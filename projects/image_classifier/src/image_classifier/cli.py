"""`image-classifier`: one command per pipeline stage, plus `serve`. Parameters come from
`params.yaml` (section `image_classifier`); DVC runs these stages (see `dvc.yaml`)."""

from pathlib import Path
from typing import Annotated

import typer

from image_classifier.pipeline import DATA, DRIFT_REFERENCE, MODELS, REPORTS
from mlstack.project_cli import echo_json, project_app
from mlstack.serve_command import add_serve_command

app = project_app(__doc__)

ModelName = Annotated[
    str, typer.Option("--model", "-m", help="Model family: resnet | efficientnet.")
]


@app.command()
def prepare(
    source: Annotated[
        str | None, typer.Option(help="digits | image folder | CSV manifest.")
    ] = None,
) -> None:
    """Write stratified train/val/test manifests (and the digits images) under data/."""
    from image_classifier.pipeline import prepare_stage

    report = prepare_stage(source)
    echo_json(
        {
            k: report[k]
            for k in ("source", "images", "splits", "exact_duplicates", "imbalance_ratio")
        }
        | {"unreadable": len(report["unreadable"])}
    )


@app.command()
def validate() -> None:
    """Check the prepared splits (schema, pixels, class balance, leakage); fails on any problem."""
    from image_classifier.params import load_params
    from image_classifier.validate import validate as run
    from mlstack.validate import ValidationError

    try:
        report = run(DATA, REPORTS / "validation.json", load_params()["validation"])
    except ValidationError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    echo_json({k: report[k] for k in ("passed", "images", "splits")})


@app.command()
def train(model: ModelName = "resnet") -> None:
    """Train one model family; tracked in MLflow; best checkpoint as safetensors."""
    from image_classifier.params import model_params
    from image_classifier.train import train_model

    card = train_model(model, model_params(model), DATA, MODELS / model)
    echo_json({k: card[k] for k in ("name", "val_accuracy", "best_epoch", "train_seconds")})


@app.command()
def evaluate(model: ModelName = "resnet") -> None:
    """Test-set metrics, confusion matrix and calibration plots."""
    from image_classifier.evaluate import evaluate_model

    echo_json(evaluate_model(MODELS / model, DATA, REPORTS / model))


@app.command()
def behaviour(
    model: ModelName = "resnet",
    gate: Annotated[
        bool,
        typer.Option(
            help="Exit 1 when a check fails. --no-gate records the failure in the report and "
            "exits 0: ic_register then refuses the model (one of several candidates failing "
            "must not stop the others)."
        ),
    ] = True,
) -> None:
    """Behavioural tests on the test split (invariance, noise, per-class floor); fails below a
    bound."""
    from image_classifier.behaviour import behaviour as run
    from image_classifier.params import load_params
    from mlstack.validate import ValidationError

    try:
        params = load_params()["behaviour"]
        report = run(MODELS / model, DATA, REPORTS / model / "behaviour.json", params)
    except ValidationError as exc:
        typer.echo(str(exc), err=True)
        if gate:
            raise typer.Exit(1) from exc
        return
    echo_json({k: report[k] for k in ("passed", "images", "accuracy")})


@app.command()
def export(model: ModelName = "resnet", version: str = "1") -> None:
    """Export to ONNX and check parity against torch on the test set."""
    from image_classifier.export import export_model

    echo_json(export_model(MODELS / model, DATA, version=version))


@app.command()
def quantize(model: ModelName = "resnet") -> None:
    """Static INT8 quantization, the fp32/INT8 comparison report and the pruning curve."""
    from image_classifier.optimize import quantize_model
    from image_classifier.params import load_params

    report = quantize_model(MODELS / model, DATA, REPORTS / model, load_params()["quantize"])
    echo_json(
        {
            name: {k: round(v, 4) for k, v in entry.items()}
            for name, entry in report["variants"].items()
        }
    )


@app.command()
def distill(
    teacher: Annotated[
        str | None, typer.Option(help="Teacher model family (default: params.yaml's).")
    ] = None,
) -> None:
    """Knowledge distillation: the teacher teaches a small CNN, picked on validation over the
    (alpha, temperature) grid; the same CNN trained alone is the baseline. ONNX exports with
    parity, then size, latency, test accuracy and agreement with the teacher."""
    from image_classifier.pipeline import distill_stage

    report = distill_stage(teacher)
    echo_json({"chosen": report["chosen"], **report["summary"]})


Models = Annotated[
    list[str] | None, typer.Option("--model", "-m", help="Model families (default: resnet).")
]


@app.command()
def register(models: Models = None) -> None:
    """Register every model in MLflow; the best on validation of those that passed their
    behaviour checks (ic_behaviour's reports; none: not passed) goes through the promotion gate.
    Exits 1 when none passed."""
    from image_classifier.pipeline import register_stage

    result = register_stage(models or ["resnet"])
    echo_json(result)
    if result["candidate"] is None:
        typer.echo(result["decision"]["reason"], err=True)
        raise typer.Exit(1)


@app.command("retrain-if-drift")
def retrain_if_drift(
    log_dir: Annotated[Path, typer.Option(help="Inference log folder.")] = Path(
        ".run/monitor/image_classifier"
    ),
    threshold: Annotated[
        float, typer.Option(min=0, max=1, help="Retrain past this drift share.")
    ] = 0.5,
    since_hours: Annotated[float | None, typer.Option(help="Only log records this recent.")] = None,
) -> None:
    """Drift job on the inference log; past the threshold, `dvc repro` the ic stages (retrain,
    evaluate, register through the promotion gate) and print the gate's decision."""
    from image_classifier.pipeline import retrain_if_drift_stage

    if not DRIFT_REFERENCE.exists():
        typer.echo(
            f"{DRIFT_REFERENCE} is missing: `dvc pull` (or `dvc repro ic_prepare`)", err=True
        )
        raise typer.Exit(2)
    result = retrain_if_drift_stage(log_dir, threshold, since_hours)
    echo_json(result)
    if result["drifted"] is None:  # as `mlstack drift`: an empty log is a broken pipe, not calm
        raise typer.Exit(2)


@app.command()
def imagenet() -> None:
    """Export the pretrained ImageNet EfficientNet-Lite0 for the `imagenet` route."""
    from image_classifier.imagenet import export_imagenet

    echo_json(export_imagenet(MODELS / "imagenet"))


@app.command()
def tune(
    model: ModelName = "resnet",
    trials: Annotated[int, typer.Option(min=1, help="Optuna trials.")] = 8,
) -> None:
    """Optuna search over lr, weight decay, dropout and label smoothing (each trial in MLflow)."""
    from image_classifier.tune import run_search

    echo_json(run_search(model, trials, DATA, REPORTS / model / "tune.json"))


add_serve_command(
    app,
    "image_classifier.service",
    doc="Serve the champion (and the ImageNet model) over HTTP (settings from "
    "IMAGE_CLASSIFIER_* environment variables).",
)


if __name__ == "__main__":
    app()
