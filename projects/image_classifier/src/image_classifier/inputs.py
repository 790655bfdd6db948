"""Reading images out of a request, safely: every bad input becomes a clear 4xx.

Accepted: multipart uploads (any number of file parts, up to the limit) or JSON with base64
(`{"image": "..."}` or `{"images": ["...", ...]}`, data URLs too).
"""

import base64
import binascii
import io
import warnings

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from mlstack.serve import APIError
from mlstack.serve.errors import validation_error

ALLOWED_FILE_TYPES = ("image/", "application/octet-stream")


class ClassifyJSON(BaseModel):
    image: str | None = Field(None, description="One base64 image (a data URL works too).")
    images: list[str] | None = Field(None, description="Several base64 images.")
    top_k: int = Field(5, ge=1, le=100)


def _too_many(count: int, limit: int) -> APIError:
    return APIError(
        422,
        "too_many_images",
        f"at most {limit} images per request, got {count}",
        param="images",
        limit=limit,
    )


async def read_request(request: Request, max_images: int) -> tuple[list[tuple[str, bytes]], int]:
    """Returns ([(param name, raw bytes)], top_k) from a multipart or JSON request."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _read_multipart(request, max_images)
    if content_type == "application/json":
        return await _read_json(request, max_images)
    raise APIError(
        415,
        "unsupported_media_type",
        f"content-type {content_type or 'missing'!r} is "
        "not accepted: send multipart/form-data or application/json",
        param="content-type",
    )


async def _read_multipart(request: Request, max_images: int) -> tuple[list[tuple[str, bytes]], int]:
    try:
        form = await request.form(max_files=max_images + 1, max_fields=16)
    except APIError:
        raise
    except Exception as exc:  # starlette's multipart errors: malformed body, too many parts
        raise APIError(
            400, "invalid_multipart", f"could not read the multipart body: {exc}", param="body"
        ) from None
    files = [(key, value) for key, value in form.multi_items() if isinstance(value, UploadFile)]
    if not files:
        raise APIError(
            422,
            "missing_image",
            "no file part in the upload: send the image as a file field named 'file'",
            param="file",
        )
    if len(files) > max_images:
        raise _too_many(len(files), max_images)
    top_k = _top_k(form.get("top_k") or request.query_params.get("top_k"))
    blobs = []
    for i, (key, upload) in enumerate(files):
        param = key if len(files) == 1 else f"{key}[{i}]"
        kind = (upload.content_type or "application/octet-stream").lower()
        if not kind.startswith(ALLOWED_FILE_TYPES):
            raise APIError(
                415,
                "unsupported_media_type",
                f"{param} has content type {kind!r}; upload an image (image/png, image/jpeg, ...)",
                param=param,
            )
        blobs.append((param, await upload.read()))
    return blobs, top_k


async def _read_json(request: Request, max_images: int) -> tuple[list[tuple[str, bytes]], int]:
    try:
        body = ClassifyJSON.model_validate_json(await request.body())
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None
    if body.image is not None and body.images is not None:
        raise APIError(
            422, "ambiguous_input", "send either 'image' or 'images', not both", param="images"
        )
    encoded = (
        [("image", body.image)]
        if body.image is not None
        else [(f"images[{i}]", s) for i, s in enumerate(body.images or [])]
    )
    if not encoded:
        raise APIError(
            422, "missing_image", "send 'image' (base64) or 'images' (a list)", param="image"
        )
    if len(encoded) > max_images:
        raise _too_many(len(encoded), max_images)
    return [(param, _b64decode(param, s)) for param, s in encoded], body.top_k


def _b64decode(param: str, value: str) -> bytes:
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "invalid_base64", f"{param} is not valid base64", param=param) from None


def _top_k(raw: object) -> int:
    if raw is None:
        return 5
    try:
        value = int(str(raw))
    except ValueError:
        raise APIError(422, "invalid_top_k", "top_k must be an integer", param="top_k") from None
    if not 1 <= value <= 100:
        raise APIError(
            422, "invalid_top_k", "top_k must be between 1 and 100", param="top_k", limit=100
        )
    return value


def decode_image(param: str, data: bytes, max_pixels: int) -> Image.Image:
    """Decodes one image, refusing empty, undecodable, truncated and oversized ones.

    The pixel count is read from the header before any pixel is decoded, so a decompression bomb
    (a small file that expands to gigabytes) is refused without allocating it.
    """
    if not data:
        raise APIError(400, "empty_image", f"{param} is empty (0 bytes)", param=param)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise APIError(
                    422,
                    "image_too_large",
                    f"{param} is {width}x{height} = "
                    f"{width * height} pixels; the limit is {max_pixels}",
                    param=param,
                    limit=max_pixels,
                )
            image.load()
    except APIError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise APIError(
            422,
            "image_too_large",
            f"{param} is over the pixel limit of {max_pixels}",
            param=param,
            limit=max_pixels,
        ) from None
    except UnidentifiedImageError:
        raise APIError(
            400,
            "invalid_image",
            f"{param} is not a decodable image (PNG, JPEG, GIF, BMP, WebP, TIFF)",
            param=param,
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise APIError(
            400,
            "corrupt_image",
            f"{param} could not be decoded (truncated or corrupt): {exc}",
            param=param,
        ) from None
    return image
