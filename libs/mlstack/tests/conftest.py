import threading
import time

import numpy as np
import pytest

from mlstack.serve import ModelCard, ServeSettings, create_app


class EchoModel:
    """A model that doubles numbers, records its batch sizes and can be slowed down or broken."""

    def __init__(self, name: str = "echo", delay_s: float = 0.0, warmup_s: float = 0.0) -> None:
        self.card = ModelCard(name=name, version="3", sha256="abc")
        self.delay_s, self.warmup_s = delay_s, warmup_s
        self.batches: list[int] = []
        self.warm = threading.Event()  # set: the warm-up ends at once (tests under load)

    def warmup(self) -> None:
        self.warm.wait(self.warmup_s)

    def predict_batch(self, items: list) -> list:
        self.batches.append(len(items))
        time.sleep(self.delay_s)
        if any(x == "boom" for x in items):
            raise RuntimeError("model failure")
        return [float(np.float64(x) * 2) for x in items]


@pytest.fixture
def make_app():
    """Builds an mlstack app around EchoModel with a `/v1/double` route."""

    def build(model: EchoModel | None = None, **settings):
        from fastapi import Body

        from mlstack.serve import Hub

        model = model or EchoModel()
        app = create_app(
            title="test", settings=ServeSettings(**settings), load_models=lambda: [model]
        )

        @app.post("/v1/double")
        async def double(hub: Hub, values: list[float] = Body(..., embed=True, max_length=64)):
            return {"results": await hub.get().predict(values)}

        return app

    return build
