"""Reading images out of a request: every bad input becomes a clear 4xx naming the field.

Accepted: multipart uploads (one `file` part, or up to `max_images` `files` parts) or JSON with
base64 (`{"image": "..."}` or `{"images": ["...", ...]}`, data URLs too). The schemas built here
are both what the code validates and what the OpenAPI document says, so they cannot drift.
"""

import base64
import binascii
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from image_classifier.decode import FORMAT_NAMES
from mlstack.fields import json_int
from mlstack.serve import APIError, offload
from mlstack.serve.errors import validation_error

# Standard base64 (padded), optionally as a data URL; whitespace is not base64.
B64_PATTERN = (
    r"^(data:image/[A-Za-z0-9.+-]{1,40};base64,)?([A-Za-z0-9+/]{4})*"
    r"([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$"
)
FILE_TYPES = "image/png, image/jpeg, image/gif, image/webp, image/bmp, application/octet-stream"
B64_FORMAT = "base64-image"  # an annotation for readers and fuzzers (see testing.py)
MAX_TOP_K = 100
ONE_OF = [{"required": ["image"]}, {"required": ["images"]}]
ANY_FILES = [{"required": ["file"]}, {"required": ["files"]}]


@dataclass(frozen=True)
class Limits:
    max_images: int
    max_chars: int  # per base64 string: the body limit, since a string cannot be longer


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # optional, not nullable: `null` is refused like any non-string


@lru_cache
def json_model(limits: Limits) -> type[BaseModel]:
    """The JSON body's model for these limits (a class per limit set, built once)."""
    encoded = Annotated[
        str,
        StringConstraints(min_length=4, max_length=limits.max_chars, pattern=B64_PATTERN),
        Field(json_schema_extra={"format": B64_FORMAT}),
    ]

    class ClassifyJSON(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"oneOf": ONE_OF})
        image: encoded = Field(
            None,
            description=f"One base64 image ({FORMAT_NAMES}); a data URL works too.",
            json_schema_extra=_no_default,
        )
        images: list[encoded] = Field(
            None,
            min_length=1,
            max_length=limits.max_images,
            description="Several base64 images, classified in one batch.",
            json_schema_extra=_no_default,
        )
        top_k: json_int(ge=1, le=MAX_TOP_K) = Field(5, description="Labels per image, best first.")

    return ClassifyJSON


def body_doc(limits: Limits) -> dict[str, Any]:
    """`openapi_extra` for the classify routes: both body types, with their limits."""
    file = {"type": "string", "format": "binary", "description": f"An image ({FORMAT_NAMES})."}
    top_k = {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "default": 5}
    multipart = {
        "type": "object",
        "properties": {
            "file": file,
            "files": {
                "type": "array",
                "items": file,
                "minItems": 1,
                "maxItems": limits.max_images,
            },
            "top_k": top_k,
        },
        "additionalProperties": False,
        "anyOf": ANY_FILES,
    }
    encoding = {"file": {"contentType": FILE_TYPES}, "files": {"contentType": FILE_TYPES}}
    return {
        "requestBody": {
            "content": {
                "multipart/form-data": {"schema": multipart, "encoding": encoding},
                "application/json": {"schema": json_model(limits).model_json_schema()},
            },
            "required": True,
        }
    }


def _too_many(count: int, limit: int) -> APIError:
    return APIError(
        422,
        "too_many_images",
        f"at most {limit} images per request, got {count}",
        param="images",
        limit=limit,
    )


async def read_request(request: Request, limits: Limits) -> tuple[list[tuple[str, bytes]], int]:
    """Returns ([(param name, raw bytes)], top_k) from a multipart or JSON request."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _read_multipart(request, limits.max_images)
    if content_type == "application/json":
        return await offload(_parse_json, await request.body(), limits)
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
    except Exception as exc:  # starlette's multipart errors: malformed body, too many parts
        raise APIError(
            400, "invalid_multipart", f"could not read the multipart body: {exc}", param="body"
        ) from None
    items = form.multi_items()
    for key, _ in items:
        if key not in ("file", "files", "top_k"):
            raise APIError(
                422, "unknown_field", f"unknown form field {key!r}: send file or files", param=key
            )
    files = [(key, value) for key, value in items if key in ("file", "files")]
    if not files:
        raise APIError(
            422,
            "missing_image",
            "no image in the upload: send it as a file part named 'file' (or several as 'files')",
            param="file",
        )
    if sum(key == "file" for key, _ in files) > 1:
        raise APIError(
            422, "ambiguous_input", "send one 'file' part, or several as 'files'", param="file"
        )
    if len(files) > max_images:
        raise _too_many(len(files), max_images)
    top_k = _top_k(form.getlist("top_k"))
    blobs: list[tuple[str, bytes]] = []
    for key, upload in files:
        param = "file" if key == "file" else f"files[{sum(p != 'file' for p, _ in blobs)}]"
        if not isinstance(upload, UploadFile):  # a part without a filename (curl -F 'file=<x')
            blobs.append((param, _field_bytes(upload)))
            continue
        kind = (upload.content_type or "application/octet-stream").lower()
        if not kind.startswith(("image/", "application/octet-stream")):
            raise APIError(
                415,
                "unsupported_media_type",
                f"{param} has content type {kind!r}; upload an image ({FORMAT_NAMES})",
                param=param,
            )
        blobs.append((param, await upload.read()))
    return blobs, top_k


def _field_bytes(value: str) -> bytes:
    """Starlette decodes a part without a filename as UTF-8, falling back to Latin-1 (which
    maps bytes 1:1): image bytes are never valid UTF-8 (PNG, JPEG and BMP headers are not), so
    encoding back to Latin-1 recovers them exactly."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _parse_json(raw: bytes, limits: Limits) -> tuple[list[tuple[str, bytes]], int]:
    """Validates and decodes the JSON body (in the CPU pool: megabytes of base64)."""
    try:
        body = json_model(limits).model_validate_json(raw)
    except ValidationError as exc:
        raise _json_error(exc.errors(), limits) from None
    if body.image is not None and body.images is not None:
        raise APIError(
            422, "ambiguous_input", "send either 'image' or 'images', not both", param="images"
        )
    if body.image is None and body.images is None:
        raise APIError(
            422, "missing_image", "send 'image' (base64) or 'images' (a list)", param="image"
        )
    encoded = (
        [("image", body.image)]
        if body.image is not None
        else [(f"images[{i}]", s) for i, s in enumerate(body.images)]
    )
    return [(param, _b64decode(param, s)) for param, s in encoded], body.top_k


def _json_error(errors: list[dict], limits: Limits) -> APIError:
    """The pydantic error as the envelope, with the image fields' errors said plainly."""
    first = errors[0] if errors else {}
    loc, kind = tuple(first.get("loc", ())), first.get("type")
    if loc == ("images",) and kind == "too_long":
        return _too_many(len(first.get("input") or ()), limits.max_images)
    if (
        loc[:1] in (("image",), ("images",))
        and len(loc) <= 2
        and kind
        in (
            "string_pattern_mismatch",
            "string_too_short",
        )
    ):
        param = "image" if len(loc) == 1 else f"images[{loc[1]}]"
        return APIError(
            400,
            "invalid_base64",
            f"{param} is not valid base64 (standard alphabet, padded, no whitespace; "
            "a data URL must start data:image/<type>;base64,)",
            param=param,
        )
    return validation_error(errors)


def _b64decode(param: str, value: str) -> bytes:
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "invalid_base64", f"{param} is not valid base64", param=param) from None


def _top_k(values: list[Any]) -> int:
    if not values:
        return 5
    if len(values) > 1 or not isinstance(values[0], str):
        raise APIError(422, "invalid_top_k", "send top_k once, as a form field", param="top_k")
    if not re.fullmatch(r"[0-9]{1,9}", values[0]):  # int() would also take "1_0", " 3", "٣"
        raise APIError(422, "invalid_top_k", "top_k must be an integer", param="top_k")
    value = int(values[0])
    if not 1 <= value <= MAX_TOP_K:
        raise APIError(
            422,
            "invalid_top_k",
            f"top_k must be between 1 and {MAX_TOP_K}",
            param="top_k",
            limit=MAX_TOP_K,
        )
    return value
