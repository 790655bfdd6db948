"""The HTTP routes: `POST /v1/classify` on the default (digits champion) model and
`POST /v1/classify/{model}` on any loaded one. A request's images are opened, then preprocessed
one at a time, in the bounded pool (`offload`), never on the event loop; the model's deployment
predicts them, and each prediction is counted in the metrics and, where configured, written to the
inference log."""

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam

from image_classifier.decode import min_side_for, open_all, prepare
from image_classifier.inputs import Limits, body_doc, read_request
from image_classifier.predictor import OnnxClassifier
from image_classifier.schemas import ClassifyResponse, Label, Prediction
from image_classifier.settings import Settings
from mlstack.monitor import metrics
from mlstack.monitor.inference_log import InferenceLog
from mlstack.serve import Hub, ModelHub, error_responses, offload

ERRORS = error_responses(400, 415)


def make_router(settings: Settings) -> APIRouter:
    """The classify routes; their OpenAPI body states this service's configured limits."""
    limits = Limits(max_images=settings.max_images, max_chars=settings.max_body_bytes)
    doc = body_doc(limits)
    router = APIRouter(prefix="/v1", tags=["classify"])

    @router.post("/classify", response_model=ClassifyResponse, openapi_extra=doc, responses=ERRORS)
    async def classify_default(request: Request, hub: Hub) -> ClassifyResponse:
        """Classify one or more images with the default (digits champion) model."""
        return await _classify(request, hub, None, limits)

    @router.post(
        "/classify/{model}",
        response_model=ClassifyResponse,
        openapi_extra=doc,
        responses={**ERRORS, **error_responses(404)},
    )
    async def classify_with(request: Request, hub: Hub, model: ModelName) -> ClassifyResponse:
        """Classify with a named model (see `GET /v1/models`), e.g. `imagenet`."""
        return await _classify(request, hub, model, limits)

    return router


ModelName = Annotated[str, PathParam(max_length=64, description="A name from `GET /v1/models`.")]


async def _classify(
    request: Request, hub: ModelHub, model_name: str | None, limits: Limits
) -> ClassifyResponse:
    settings: Settings = request.app.state.settings
    deployment = hub.get(model_name)
    classifier: OnnxClassifier = deployment.model
    blobs, top_k = await read_request(request, limits)
    min_side = min_side_for(classifier.preprocessor)
    images = await offload(
        open_all,
        blobs,
        max_pixels=settings.max_pixels,
        max_request_pixels=settings.max_request_pixels,
        min_side=min_side,
    )
    del blobs  # the open images hold the bytes they need
    prepared = []
    for param, image in images:  # one at a time: one full-size image in memory per request
        prepared.append(await offload(prepare, param, image, classifier.preprocessor, min_side))
    request_id = getattr(request.state, "request_id", None)
    probabilities = await deployment.predict([p.array for p in prepared], request_id=request_id)

    name = classifier.card.name
    inference_log: InferenceLog | None = request.app.state.inference_log
    predictions = []
    for item, probs in zip(prepared, probabilities, strict=True):
        top = classifier.top_k(probs, min(top_k, len(classifier.labels)))
        metrics.observe_prediction(name, top[0]["label"], top[0]["probability"])
        if inference_log is not None:
            inference_log.log(
                {
                    "model": name,
                    "role": "champion",
                    "request_id": request_id,
                    **item.stats,
                    "label": top[0]["label"],
                    "confidence": top[0]["probability"],
                }
            )
        predictions.append(Prediction(top_k=[Label(**t) for t in top]))
    return ClassifyResponse(model=name, version=classifier.card.version, predictions=predictions)
