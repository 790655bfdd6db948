"""The service's settings, from `IMAGE_CLASSIFIER_*` variables or `.env`."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlstack.serve import ServeSettings


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
    max_pixels: int = Field(
        25_000_000, ge=1, description="Declared pixels per image (width x height)."
    )
    max_request_pixels: int = Field(
        50_000_000,
        ge=1,
        description="Decoded pixels per request, summed over its images and checked from their "
        "headers before any decoding (JPEGs count at the reduced scale they decode at).",
    )
    onnx_threads: int = Field(0, ge=0, description="ONNX Runtime threads; 0 lets it choose.")
    shadow_model: Path | None = Field(
        None,
        description="An ONNX challenger run as a shadow of the digits champion on "
        "`shadow_share` of its requests (same labels and preprocessing); its answers are only "
        "logged (`mlstack shadow-report`), never returned.",
    )
    shadow_name: str = Field("challenger", description="The shadow's name in logs and metrics.")
