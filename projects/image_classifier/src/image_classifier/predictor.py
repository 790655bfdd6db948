"""An ONNX Runtime classifier that reads its labels and preprocessing from the model file."""

import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from image_classifier.transforms import Preprocess
from mlstack.serve import ModelCard, file_sha256


class OnnxClassifier:
    """Implements mlstack's `ServedModel`: `predict_batch(list of CHW arrays) -> list of probs`."""

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        threads: int = 0,
        max_batch_size: int = 32,
    ) -> None:
        started = time.perf_counter()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.input_name = self.session.get_inputs()[0].name
        self.labels: list[str] = json.loads(meta["labels"])
        self.preprocessor = Preprocess.from_dict(json.loads(meta["preprocess"]))
        self.max_batch_size = max_batch_size
        self.card = ModelCard(
            name=name or meta.get("name", Path(path).stem),
            version=meta.get("version", "0"),
            path=str(path),
            sha256=file_sha256(path),
            load_seconds=time.perf_counter() - started,
            extra={
                "classes": len(self.labels),
                "image_size": self.preprocessor.image_size,
                "quantization": meta.get("quantization", "none"),
                "git_commit": meta.get("git_commit"),
            },
        )

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self.preprocessor(image)

    def predict_batch(self, items: list[np.ndarray]) -> list[np.ndarray]:
        logits = self.session.run(None, {self.input_name: np.stack(items)})[0]
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        return list(z / z.sum(axis=1, keepdims=True))

    def warmup(self) -> None:
        size = self.preprocessor.image_size
        for batch in (1, self.max_batch_size):
            self.predict_batch([np.zeros((3, size, size), np.float32)] * batch)

    def describe(self, probs: np.ndarray) -> dict[str, float | str]:
        """The top label and its probability: what a shadow comparison logs of one output."""
        top = self.top_k(probs, 1)[0]
        return {"label": top["label"], "confidence": top["probability"]}

    def top_k(self, probs: np.ndarray, k: int) -> list[dict[str, float | str]]:
        order = np.argsort(probs)[::-1][:k]
        return [{"label": self.labels[i], "probability": round(float(probs[i]), 6)} for i in order]
