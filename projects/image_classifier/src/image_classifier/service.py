"""The image classifier service: `POST /v1/classify` on the digits champion and
`POST /v1/classify/{model}` on any loaded model (the ImageNet EfficientNet-Lite0 among them).

Run: `image-classifier serve` (settings from `IMAGE_CLASSIFIER_*` variables or `.env`).
"""

import json
import logging
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from image_classifier.inputs import decode_image, read_request
from image_classifier.predictor import OnnxClassifier
from image_classifier.transforms import image_stats
from mlstack.monitor import metrics
from mlstack.monitor.inference_log import InferenceLog
from mlstack.serve import Hub, ServeSettings, create_app

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


class Settings(ServeSettings):
    model_config = SettingsConfigDict(
        **{**ServeSettings.model_config, "env_prefix": "IMAGE_CLASSIFIER_"}
    )

    port: int = 8001
    champion: Path = Field(
        Path("models/image_classifier/champion.json"),
        description="Written by the register stage: which ONNX file to serve.",
    )
    model_path: Path | None = Field(
        None, description="Serve this ONNX file instead of the champion."
    )
    imagenet_model_path: Path | None = Path("models/image_classifier/imagenet/model.onnx")
    max_images: int = Field(32, ge=1, description="Images per request.")
    max_pixels: int = Field(25_000_000, ge=1, description="Pixels per image (width x height).")
    onnx_threads: int = Field(0, ge=0, description="ONNX Runtime threads; 0 lets it choose.")


class Label(BaseModel):
    label: str
    probability: float


class Prediction(BaseModel):
    top_k: list[Label]


class ClassifyResponse(BaseModel):
    model: str
    version: str
    predictions: list[Prediction]


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
    if settings.imagenet_model_path and settings.imagenet_model_path.is_file():
        models.append(OnnxClassifier(settings.imagenet_model_path, name="imagenet", **kwargs))
    return models


router = APIRouter(prefix="/v1", tags=["classify"])

_BODY_DOC = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "top_k": {"type": "integer", "default": 5},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "description": "base64"},
                        "images": {"type": "array", "items": {"type": "string"}},
                        "top_k": {"type": "integer", "default": 5},
                    },
                }
            },
        },
        "required": True,
    }
}


@router.post("/classify", response_model=ClassifyResponse, openapi_extra=_BODY_DOC)
async def classify_default(request: Request, hub: Hub) -> ClassifyResponse:
    """Classify one or more images with the default (digits champion) model."""
    return await _classify(request, hub, None)


@router.post("/classify/{model}", response_model=ClassifyResponse, openapi_extra=_BODY_DOC)
async def classify_with(model: str, request: Request, hub: Hub) -> ClassifyResponse:
    """Classify with a named model (see `GET /v1/models`), e.g. `imagenet`."""
    return await _classify(request, hub, model)


async def _classify(request: Request, hub: Hub, model_name: str | None) -> ClassifyResponse:
    settings: Settings = request.app.state.settings
    deployment = hub.get(model_name)
    classifier: OnnxClassifier = deployment.model
    blobs, top_k = await read_request(request, settings.max_images)

    def decode_all():
        images = [decode_image(param, data, settings.max_pixels) for param, data in blobs]
        return images, [classifier.preprocess(image) for image in images]

    images, arrays = await run_in_threadpool(decode_all)
    probabilities = await deployment.predict(arrays)

    name = classifier.card.name
    inference_log: InferenceLog | None = request.app.state.inference_log
    predictions = []
    for image, probs in zip(images, probabilities, strict=True):
        top = classifier.top_k(probs, min(top_k, len(classifier.labels)))
        metrics.observe_prediction(name, top[0]["label"], top[0]["probability"])
        if inference_log is not None:
            inference_log.log(
                {
                    "model": name,
                    **image_stats(image),
                    "label": top[0]["label"],
                    "confidence": top[0]["probability"],
                }
            )
        predictions.append(Prediction(top_k=[Label(**t) for t in top]))
    return ClassifyResponse(model=name, version=classifier.card.version, predictions=predictions)


def build_app(settings: Settings) -> FastAPI:
    app = create_app(
        title="image-classifier",
        settings=settings,
        load_models=lambda: load_models(settings),
        demo_dir=STATIC,
    )
    app.include_router(router)
    return app


def app_factory() -> FastAPI:
    """Zero-argument factory for uvicorn (`--factory`): settings from the environment."""
    return build_app(Settings())
