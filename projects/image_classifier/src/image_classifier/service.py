"""The image classifier service: `POST /v1/classify` on the digits champion and
`POST /v1/classify/{model}` on any loaded model (the ImageNet EfficientNet-Lite0 among them).

Run: `image-classifier serve` (settings from `IMAGE_CLASSIFIER_*` variables or `.env`, see
settings.py; the routes in routes.py, response bodies in schemas.py). This module loads the models
and builds the app.
"""

import json
import logging
from pathlib import Path

from fastapi import FastAPI

from image_classifier.predictor import OnnxClassifier
from image_classifier.routes import make_router
from image_classifier.settings import Settings
from mlstack.serve import create_app

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def load_models(settings: Settings) -> list[OnnxClassifier]:
    path = settings.model_path
    if path is None:
        if not settings.champion.exists():
            raise FileNotFoundError(
                f"{settings.champion} not found: run `dvc repro` (or set "
                "IMAGE_CLASSIFIER_MODEL_PATH to an ONNX file)"
            )
        path = Path(json.loads(settings.champion.read_text())["onnx"])
    kwargs = {"threads": settings.onnx_threads, "max_batch_size": settings.max_batch_size}
    models = [OnnxClassifier(path, name="digits", **kwargs)]
    if settings.shadow_model is not None:
        models.append(load_shadow(settings, models[0]))
    if settings.imagenet_model_path and settings.imagenet_model_path.is_file():
        models.append(OnnxClassifier(settings.imagenet_model_path, name="imagenet", **kwargs))
    return models


def load_shadow(settings: Settings, champion: OnnxClassifier) -> OnnxClassifier:
    """The challenger gets the champion's preprocessed arrays (no second decode on the request
    path), so it must expect the same preprocessing and labels; a mismatch stops the start-up
    rather than logging meaningless comparisons. One ONNX thread: its CPU stays within the one
    low-priority shadow thread."""
    path, name = settings.shadow_model, settings.shadow_name
    shadow = OnnxClassifier(path, name=name, threads=1, max_batch_size=settings.max_batch_size)
    if (shadow.preprocessor, shadow.labels) != (champion.preprocessor, champion.labels):
        raise ValueError(
            f"shadow model {path} differs from the champion in preprocessing "
            f"or labels ({shadow.preprocessor}, {len(shadow.labels)} labels vs "
            f"{champion.preprocessor}, {len(champion.labels)})"
        )
    shadow.card.shadow_of = champion.card.name
    return shadow


def build_app(settings: Settings) -> FastAPI:
    app = create_app(
        title="image-classifier",
        settings=settings,
        load_models=lambda: load_models(settings),
        demo_dir=STATIC,
    )
    app.include_router(make_router(settings))
    return app


def app_factory() -> FastAPI:
    """Zero-argument factory for uvicorn (`--factory`): settings from the environment."""
    return build_app(Settings())
