"""A tiny real classifier for tests, schemathesis runs and soak benchmarks (no torch, ~50 ms).

    from image_classifier.testing import tiny_app
    app = tiny_app(tmp_path)  # the real service on a tiny ONNX model, every limit at its default

or from a shell (serves on 127.0.0.1:PORT until interrupted):

    python -m image_classifier.testing /tmp/classifier-tiny --port 8765 [--api-key KEY]
"""

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from image_classifier.inputs import B64_FORMAT
from image_classifier.transforms import Preprocess

LABELS = [str(i) for i in range(10)]


def tiny_onnx(
    folder: Path, *, image_size: int = 16, name: str = "digits", seed: int = 0, conv: int = 0
) -> Path:
    """An ONNX model with the metadata the service reads (labels, preprocessing, version):
    per-channel mean pooling then a fixed linear layer, so predictions depend on the pixels.
    Another `seed`, other weights (a challenger that disagrees); `conv` > 0 puts two 3x3
    convolutions of that width in front, for a model with real CPU cost (benchmarks)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, weights, channels, pixels = [], [], 3, "pixels"
    if conv:
        for i, shape in enumerate([(conv, 3, 3, 3), (conv, conv, 3, 3)]):
            w = (rng.normal(size=shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)
            weights.append(numpy_helper.from_array(w, f"conv{i}"))
            nodes += [
                helper.make_node("Conv", [pixels, f"conv{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
            ]
            pixels = f"r{i}"
        channels = conv
    weight = rng.normal(size=(channels, len(LABELS))).astype(np.float32)
    bias = rng.normal(size=(len(LABELS),)).astype(np.float32)
    weights += [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")]
    graph = helper.make_graph(
        [
            *nodes,
            helper.make_node("ReduceMean", [pixels], ["pooled"], axes=[2, 3], keepdims=0),
            helper.make_node("Gemm", ["pooled", "weight", "bias"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(LABELS)])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    metadata = {
        "name": name,
        "version": "7",
        "labels": json.dumps(LABELS),
        "preprocess": json.dumps(Preprocess(image_size).to_dict()),
    }
    helper.set_model_props(model, metadata)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{'' if seed == 0 else f'-{seed}'}.onnx"
    onnx.save(model, str(path))
    return path


def tiny_settings(folder: Path, **overrides: Any):
    """Service settings on the tiny model, every other setting at its default unless overridden.
    The `.env` file is ignored so a test does not pick up a developer's settings."""
    from image_classifier.settings import Settings

    values = {
        "model_path": tiny_onnx(folder),
        "imagenet_model_path": None,
        "onnx_threads": 1,
        **overrides,
    }
    return Settings(_env_file=None, **values)


def tiny_app(folder: Path, **overrides: Any):
    """The real service app (routes, limits, auth, batching) on the tiny model."""
    from image_classifier.service import build_app

    return build_app(tiny_settings(folder, **overrides))


def sample_image(fmt: str, width: int, height: int, color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format=fmt)
    return buf.getvalue()


def schemathesis_images() -> None:
    """Teaches schemathesis what a valid image is (pixels are beyond a JSON schema): small real
    images for each media type the upload's `encoding` names, and for the JSON body's
    `base64-image` strings. Use: `SCHEMATHESIS_HOOKS=image_classifier.st_hooks st run ...`."""
    import base64

    import schemathesis
    from hypothesis import strategies as st

    def images(formats: list[str]):
        side = st.integers(1, 48)
        color = st.tuples(*[st.integers(0, 255)] * 3)
        return st.builds(sample_image, st.sampled_from(formats), side, side, color)

    kinds = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP"}
    for kind, fmt in kinds.items():
        schemathesis.openapi.media_type(f"image/{kind}", images([fmt]))
    schemathesis.openapi.media_type("application/octet-stream", images(list(kinds.values())))
    encoded = images(list(kinds.values())).map(lambda data: base64.b64encode(data).decode())
    data_url = encoded.map(lambda text: "data:image/png;base64," + text)
    schemathesis.openapi.format(B64_FORMAT, st.one_of(encoded, data_url))
    valid = base64.b64encode(sample_image("PNG", 8, 8, (200, 30, 30))).decode()

    @schemathesis.hook
    def map_case(context, case):
        """The coverage phase draws boundary strings from the base64 pattern ("00==") rather
        than the format; in a case meant to be valid, each is made a real image (the list
        keeps its length, so count boundaries are still tested)."""
        meta, body = case.meta, case.body
        if (
            case.operation.path.startswith("/v1/classify")
            and meta is not None
            and meta.generation.mode.is_positive
            and isinstance(body, dict)
        ):
            if isinstance(body.get("image"), str):
                body["image"] = valid
            if isinstance(body.get("images"), list):
                body["images"] = [valid] * len(body["images"])
        return case


def main() -> None:
    """`python -m image_classifier.testing FOLDER --port P [--api-key K]`: the service on the
    tiny model, written to FOLDER."""
    from mlstack.testing import serve_tiny

    serve_tiny(
        "Serve the image classifier on a tiny model.",
        8765,
        lambda folder, api_key: tiny_app(folder, api_key=api_key),
    )


if __name__ == "__main__":
    main()
