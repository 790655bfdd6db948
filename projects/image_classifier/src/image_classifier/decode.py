"""Image decoding with bounded time and memory: every bad or hostile image becomes a clear 4xx.

Two steps, both run off the event loop:
1. `open_image` reads only the header: format, declared size, structure. Refused here, before any
   pixel is decoded: unknown formats, decompression bombs (a tiny file declaring gigapixels),
   files whose metadata would keep Pillow's Python parsers busy for seconds (millions of PNG
   chunks, JPEG markers or GIF blocks), slow codecs (RLE BMP in pure Python) and, summed over
   the request, more decoded pixels than the budget.
2. `prepare` decodes one image and shrinks it to the model's input at once, so a request holds at
   most one full-size image at a time (JPEGs are even decoded at 1/2..1/8 scale by libjpeg).
"""

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from image_classifier.transforms import Preprocess, image_stats
from mlstack.serve import APIError

# Formats whose parsers stay in C or are bounded by the checks below. TIFF (1M strips in a 9 MB
# file: 3 s to open, minutes to load), ICO (embedded PNGs bypass the declared size), PSD, EPS
# (Ghostscript) and the rest are refused without being parsed.
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
FORMAT_NAMES = "PNG, JPEG, GIF, WebP, BMP"
SAFE_CODECS = {"zip", "jpeg", "gif", "raw"}  # Pillow decoders in C; "bmp_rle" is Python
MAX_SEGMENTS = 16_384  # PNG chunks / JPEG markers / GIF blocks; real files have tens to ~1,300
MAX_JPEG_SCANS = 64  # progressive JPEGs use ~10; each extra scan re-walks every block
MAX_TEXT_BYTES = 1 << 20  # PNG text chunks, decompressed, per image

# Pillow's default lets one PNG hold 64 MB of decompressed text; a classifier never reads it.
PngImagePlugin.MAX_TEXT_MEMORY = MAX_TEXT_BYTES


def _too_complex(param: str, what: str) -> APIError:
    return APIError(
        422,
        "image_too_complex",
        f"{param} has {what}; at most {MAX_SEGMENTS} segments are accepted",
        param=param,
        limit=MAX_SEGMENTS,
    )


def _png_segments(data: bytes) -> int:
    pos, count = 8, 0
    while pos + 8 <= len(data) and count <= MAX_SEGMENTS:
        count += 1
        if data[pos + 4 : pos + 8] == b"IEND":
            break
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    return count


def _jpeg_segments(data: bytes) -> int:
    """Marker segments before the first scan (Pillow walks them, and any junk, in Python)."""
    pos, count = 2, 0
    while pos + 4 <= len(data) and count <= MAX_SEGMENTS:
        count += 1
        if data[pos] != 0xFF:  # junk between markers: Pillow skips it a byte at a time
            return MAX_SEGMENTS + 1
        marker = data[pos + 1]
        if marker == 0xDA:
            break
        if marker == 0xFF or 0xD0 <= marker <= 0xD8 or marker == 0x01:
            pos += 1 if marker == 0xFF else 2  # fill byte or a marker without a length
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return count


def _gif_segments(data: bytes) -> int:
    """Extension sub-blocks before the first frame (parsed by Pillow in Python)."""
    pos = 13 + (3 << ((data[10] & 7) + 1) if len(data) > 10 and data[10] & 0x80 else 0)
    count = 0
    while pos < len(data) and data[pos] == 0x21 and count <= MAX_SEGMENTS:
        pos += 2
        while pos < len(data) and data[pos] and count <= MAX_SEGMENTS:
            count += 1
            pos += 1 + data[pos]
        pos += 1
        count += 1
    return count


def _check_codecs(param: str, image: Image.Image) -> None:
    codecs = {tile.codec_name for tile in image.tile}
    if len(image.tile) > 1 or not codecs <= SAFE_CODECS:
        raise APIError(
            415,
            "unsupported_image_encoding",
            f"{param}: {image.format} with {', '.join(sorted(codecs))} encoding is not accepted "
            "(RLE-compressed BMP among others); send PNG or JPEG",
            param=param,
        )


def _check_structure(param: str, data: bytes) -> None:
    """Before Pillow parses anything: its PNG, JPEG and GIF header loops are Python, per
    segment, so a 10 MB file of empty segments would hold a thread for seconds."""
    if data[:8] == PngImagePlugin._MAGIC and _png_segments(data) > MAX_SEGMENTS:
        raise _too_complex(param, f"over {MAX_SEGMENTS} PNG chunks")
    if data[:3] == b"GIF" and _gif_segments(data) > MAX_SEGMENTS:
        raise _too_complex(param, f"over {MAX_SEGMENTS} GIF extension blocks")
    if data[:2] == b"\xff\xd8":
        if _jpeg_segments(data) > MAX_SEGMENTS:
            raise _too_complex(param, "too many JPEG markers (or junk) before the image data")
        scans = data.count(b"\xff\xda")  # entropy-coded data never holds FF DA (byte stuffing)
        if scans > MAX_JPEG_SCANS:
            raise APIError(
                422,
                "image_too_complex",
                f"{param} has {scans} JPEG scans; at most {MAX_JPEG_SCANS} are accepted",
                param=param,
                limit=MAX_JPEG_SCANS,
            )


def _too_large(param: str, message: str, limit: int) -> APIError:
    return APIError(422, "image_too_large", f"{param} {message}", param=param, limit=limit)


def open_image(param: str, data: bytes, *, max_pixels: int, min_side: int) -> Image.Image:
    """Reads the header only; JPEGs are set to decode at the smallest scale that keeps both sides
    at least `min_side`, so `image.size` afterwards is what decoding will allocate."""
    if not data:
        raise APIError(400, "empty_image", f"{param} is empty (0 bytes)", param=param)
    _check_structure(param, data)
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise _too_large(param, f"is over the pixel limit of {max_pixels}", max_pixels) from None
    except UnidentifiedImageError:
        raise APIError(
            400,
            "invalid_image",
            f"{param} is not an image in an accepted format ({FORMAT_NAMES})",
            param=param,
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _corrupt(param, exc) from None
    width, height = image.size
    if width < 1 or height < 1:
        raise APIError(400, "empty_image", f"{param} has no pixels ({width}x{height})", param=param)
    if width * height > max_pixels:
        raise _too_large(
            param,
            f"is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
            max_pixels,
        )
    _check_codecs(param, image)
    image.info["declared_size"] = image.size  # the inference log records it, not the draft's
    if image.format in ("JPEG", "MPO"):
        image.draft(None, (min_side, min_side))
    return image


def _corrupt(param: str, exc: BaseException) -> APIError:
    return APIError(
        400,
        "corrupt_image",
        f"{param} could not be decoded (truncated or corrupt): {exc}",
        param=param,
    )


def reduce_for(image: Image.Image, min_side: int) -> Image.Image:
    """Box-averages by the largest integer factor that keeps the short side >= `min_side`: the
    model's resize then works on at most ~2x its input size (Pillow's `thumbnail` does the same
    with `reducing_gap`), so the full-size pixels can be dropped at once."""
    factor = min(image.size) // min_side
    if factor < 2:
        return image
    if image.mode not in ("L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "F"):
        image = image.convert("RGB")  # palette and 16-bit modes cannot be averaged as they are
    return image.reduce(factor)


@dataclass
class Prepared:
    array: np.ndarray  # the model input
    stats: dict[str, float]  # for the inference log


def prepare(param: str, image: Image.Image, preprocess: Preprocess, min_side: int) -> Prepared:
    """Decodes `image`, shrinks it and turns it into the model input; the decoded pixels are
    released before returning (a request of many images holds one at a time)."""
    size = image.info.get("declared_size", image.size)
    try:
        image.load()
        small = reduce_for(image, min_side)
        array = preprocess(small)
        stats = image_stats(small)
    except Image.DecompressionBombError:
        raise _too_large(param, "is a decompression bomb", Image.MAX_IMAGE_PIXELS) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _corrupt(param, exc) from None
    finally:
        image.close()  # frees the full-size pixels now, not when the request ends
    stats["width"], stats["height"] = float(size[0]), float(size[1])
    return Prepared(array, stats)


def min_side_for(preprocess: Preprocess) -> int:
    """The smallest side the model's resize should start from: twice what it finally samples,
    and at least the 64 pixels the inference log's statistics sample."""
    return max(64, 2 * math.ceil(preprocess.image_size / min(1.0, preprocess.crop_ratio)))


def open_all(
    blobs: list[tuple[str, bytes]], *, max_pixels: int, max_request_pixels: int, min_side: int
) -> list[tuple[str, Image.Image]]:
    """Opens every image's header and enforces the request's decoded-pixel budget."""
    images, total = [], 0
    for param, data in blobs:
        image = open_image(param, data, max_pixels=max_pixels, min_side=min_side)
        total += image.size[0] * image.size[1]
        if total > max_request_pixels:
            raise APIError(
                422,
                "request_too_large",
                f"the images up to {param} decode to {total} pixels; a request may decode at "
                f"most {max_request_pixels} (send fewer or smaller images)",
                param=param,
                limit=max_request_pixels,
            )
        images.append((param, image))
    return images
