"""Hostile images and bodies over real HTTP: each a clear 4xx naming the field, within a second.

Bombs are built by hand: a few hundred bytes that declare gigapixels, or megabytes of empty
segments that keep Pillow's Python parsers busy (measured before the checks: 800k empty PNG
chunks 2.8 s, 2M JPEG markers 2.7-3.7 s, 1M GIF comments 1.6 s, 5M-run RLE BMP 1.2 s, a TIFF
with 1M strips 454 s).
"""

import base64
import io
import struct
import zlib

import httpx
import pytest
from PIL import Image

from image_classifier.testing import tiny_app
from mlstack.testing import live_server

LIMIT = 1_000_000


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    app = tiny_app(tmp_path_factory.mktemp("tiny"), max_pixels=LIMIT, max_images=4)
    with live_server(app) as url:
        yield url


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, extra: bytes = b"") -> bytes:
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + ihdr + extra + idat + chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("RGB", (8, 8)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("L", (8, 8)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    descriptor = data.index(b"\x2c", 13)
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp(width: int, height: int, compression: int = 0, pixels: bytes = b"") -> bytes:
    palette = b"\0\0\0\0" * 256
    offset = 14 + 40 + len(palette)
    info = struct.pack(
        "<IiiHHIIiiII", 40, width, height, 1, 8, compression, len(pixels), 0, 0, 256, 0
    )
    return (
        b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels
    )


def webp_declaring(width: int, height: int) -> bytes:
    frames = [Image.new("RGB", (8, 8), (i * 60, 0, 0)) for i in range(2)]
    data = bytearray(encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]))
    vp8x = data.index(b"VP8X")
    data[vp8x + 12 : vp8x + 18] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(
        3, "little"
    )
    return bytes(data)


def post_file(base: str, data: bytes, name: str = "x.bin") -> httpx.Response:
    return httpx.post(
        f"{base}/v1/classify", files={"file": (name, data, "application/octet-stream")}, timeout=30
    )


def post_json(base: str, body) -> httpx.Response:
    return httpx.post(f"{base}/v1/classify", json=body, timeout=30)


def assert_error(r: httpx.Response, status: int, code: str, param: str) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == (code, param), error
    assert r.elapsed.total_seconds() < 1.0, f"{code} took {r.elapsed}"
    return error


GIGA = 60_000  # 60000 x 60000 = 3.6 gigapixels declared


@pytest.mark.parametrize(
    "name,data",
    [
        ("png", png(GIGA, GIGA)),
        ("jpeg", jpeg_declaring(GIGA, GIGA)),
        ("gif", gif_declaring(GIGA, GIGA)),
        ("bmp", bmp(GIGA, GIGA)),
        ("webp", webp_declaring(16_000, 16_000)),
        ("png over our limit, under Pillow's", png(2000, 2000)),
    ],
)
def test_decompression_bombs_are_refused_from_the_header(base, name, data):
    assert len(data) < 2000
    error = assert_error(post_file(base, data), 422, "image_too_large", "file")
    assert error["limit"] == LIMIT
    encoded = base64.b64encode(data).decode()
    ok = base64.b64encode(encode(Image.new("RGB", (4, 4)), "PNG")).decode()
    error = assert_error(
        post_json(base, {"images": [ok, encoded]}), 422, "image_too_large", "images[1]"
    )
    assert error["limit"] == LIMIT


@pytest.mark.parametrize(
    "name,data",
    [
        ("png chunk flood", png(4, 4, chunk(b"abCd", b"") * 800_000)),
        ("png text flood", png(4, 4, chunk(b"tEXt", b"k\0v") * 20_000)),
        (
            "jpeg marker flood",
            (j := encode(Image.new("RGB", (8, 8)), "JPEG"))[:2]
            + b"\xff\xfe\x00\x02" * 2_000_000
            + j[2:],
        ),
        ("jpeg junk before markers", j[:2] + b"\x00" * 5_000_000 + j[2:]),
        ("jpeg scan flood", j[:-2] + b"\xff\xda\x00\x02" * 1000 + j[-2:]),
        (
            "gif comment flood",
            (g := encode(Image.new("L", (8, 8)), "GIF"))[: (t := 13 + (3 << (g[10] & 7) + 1))]
            + b"\x21\xfe\x01a\x00" * 1_000_000
            + g[t:],
        ),
    ],
)
def test_parser_floods_are_refused_fast(base, name, data):
    error = assert_error(post_file(base, data), 422, "image_too_complex", "file")
    assert error["limit"] and str(error["limit"]) in error["message"]


def test_slow_codecs_and_other_formats_are_refused_unparsed(base):
    rle = (b"\x01\x07" * 400 + b"\x00\x00") * 400 + b"\x00\x01"
    assert_error(post_file(base, bmp(400, 400, 1, rle)), 415, "unsupported_image_encoding", "file")
    frames = [Image.new("L", (64, 64), i % 256) for i in range(300)]
    tiff = encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    for data in (
        tiff,
        encode(Image.new("RGB", (16, 16)), "ICO"),
        encode(Image.new("RGB", (16, 16)), "TGA"),
        encode(Image.new("RGB", (16, 16)), "PPM"),
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 60000 60000\n",
    ):
        error = assert_error(post_file(base, data), 400, "invalid_image", "file")
        assert "PNG, JPEG, GIF, WebP, BMP" in error["message"]


def test_png_text_memory_is_capped(base):
    text = chunk(b"zTXt", b"k\0\0" + zlib.compress(b"a" * 900_000))  # 900 KB each, 1 KB sent
    error = assert_error(post_file(base, png(4, 4, text * 3)), 400, "corrupt_image", "file")
    assert "text chunks" in error["message"]


def test_animated_images_decode_only_their_first_frame(base):
    frames = [Image.new("L", (64, 64), i % 256) for i in range(2000)]
    for fmt in ("GIF", "WEBP"):
        data = encode(frames[0], fmt, save_all=True, append_images=frames[1:])
        r = post_file(base, data)
        assert r.status_code == 200 and r.elapsed.total_seconds() < 1.0, r.text


@pytest.mark.parametrize(
    "body,status,code,param",
    [
        ({"image": ""}, 400, "invalid_base64", "image"),
        ({"image": "    "}, 400, "invalid_base64", "image"),
        ({"image": "aGk=\u0000"}, 400, "invalid_base64", "image"),
        ({"images": ["aGk=", "a b="]}, 400, "invalid_base64", "images[1]"),
        ({"image": "A" * 1_000_000}, 400, "invalid_image", "image"),  # a megabyte, no separators
        ({"image": "data:image/png;base64," + "A" * 999_999}, 400, "invalid_base64", "image"),
        ({"image": base64.b64encode(b"\0" * 1000).decode()}, 400, "invalid_image", "image"),
        ({"image": base64.b64encode(png(0, 0)).decode()}, 400, "invalid_image", "image"),
        (
            {"image": base64.b64encode(encode(Image.new("RGB", (300, 300)), "PNG")[:200]).decode()},
            400,
            "corrupt_image",
            "image",
        ),
        ({"image": None}, 422, "invalid_string_type", "image"),
        ({"image": "aGk=", "top_k": 10**12}, 422, "invalid_less_than_equal", "top_k"),
        ({"image": "aGk=", "top_k": "5"}, 422, "invalid_int_type", "top_k"),
        ({"image": "aGk=", "extra": 1}, 422, "invalid_extra_forbidden", "extra"),
        ({"images": []}, 422, "invalid_too_short", "images"),
        ({"images": ["aGk="] * 10_000}, 422, "too_many_images", "images"),
        ({"image": "aGk=", "images": ["aGk="]}, 422, "ambiguous_input", "images"),
    ],
)
def test_hostile_json_is_a_clear_4xx(base, body, status, code, param):
    assert_error(post_json(base, body), status, code, param)


def test_hostile_raw_bodies(base):
    url = f"{base}/v1/classify"
    headers = {"content-type": "application/json"}
    nested = b'{"image": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for raw in (b'{"image": "\xff\xfe"}', nested, b"\0" * 1000):
        r = httpx.post(url, content=raw, headers=headers)
        assert_error(r, 400, "invalid_json", "body")
    form = {"file": ("a.png", encode(Image.new("RGB", (4, 4)), "PNG"), "image/png")}
    for top_k in ("1_0", " 3", "3.0", "0", "101"):
        r = httpx.post(url, files=form, data={"top_k": top_k})
        assert_error(r, 422, "invalid_top_k", "top_k")
    assert_error(httpx.post(url, files=form, data={"other": "x"}), 422, "unknown_field", "other")
