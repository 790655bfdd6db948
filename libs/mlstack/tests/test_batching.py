"""The micro-batcher under concurrent requests, a full queue, timeouts and model failures."""

import asyncio

import httpx
import pytest

from mlstack.serve import APIError, MicroBatcher
from mlstack.testing import live_server

from .conftest import EchoModel


def test_concurrent_requests_share_batches_over_http(make_app):
    model = EchoModel(delay_s=0.02)
    app = make_app(model, max_batch_size=8, max_wait_ms=20)

    async def fire(base: str) -> list:
        async with httpx.AsyncClient(base_url=base) as client:
            return await asyncio.gather(
                *(client.post("/v1/double", json={"values": [i]}) for i in range(32))
            )

    with live_server(app) as base:
        model.batches.clear()
        responses = asyncio.run(fire(base))
    assert [r.json()["results"] for r in responses] == [[2.0 * i] for i in range(32)]
    assert max(model.batches) > 1, model.batches
    assert max(model.batches) <= 8
    assert sum(model.batches) == 32


def test_full_queue_answers_503_with_retry_after(make_app):
    model = EchoModel(delay_s=0.3)
    app = make_app(model, max_batch_size=1, queue_size=2, max_wait_ms=0)

    async def fire(base: str) -> list:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            return await asyncio.gather(
                *(client.post("/v1/double", json={"values": [i]}) for i in range(8))
            )

    with live_server(app) as base:
        responses = asyncio.run(fire(base))
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 503 in statuses
    rejected = next(r for r in responses if r.status_code == 503)
    assert rejected.headers["retry-after"] == "1"
    assert rejected.json()["error"]["code"] == "overloaded"
    assert rejected.json()["error"]["limit"] == 2


def test_batch_larger_than_queue_is_rejected_whole():
    async def scenario():
        batcher = MicroBatcher(lambda xs: xs, name="t", queue_size=4)
        await batcher.start()
        with pytest.raises(APIError) as err:
            await batcher.submit_many(list(range(5)))
        assert err.value.status == 503
        assert await batcher.submit_many([1, 2, 3]) == [1, 2, 3]
        await batcher.stop()

    asyncio.run(scenario())


def test_timeout_and_model_error():
    model = EchoModel(delay_s=0.5)

    async def scenario():
        slow = MicroBatcher(model.predict_batch, name="slow", timeout_s=0.1)
        await slow.start()
        with pytest.raises(APIError) as err:
            await slow.submit(1)
        assert (err.value.status, err.value.code) == (503, "timeout")
        await slow.stop()

        broken = MicroBatcher(EchoModel().predict_batch, name="broken")
        await broken.start()
        with pytest.raises(RuntimeError, match="model failure"):
            await broken.submit("boom")
        assert await broken.submit(2) == 4.0  # the worker survives a failed batch
        await broken.stop()

    asyncio.run(scenario())


def test_stop_drains_queued_items():
    async def scenario():
        batcher = MicroBatcher(EchoModel(delay_s=0.05).predict_batch, name="d", max_batch_size=2)
        await batcher.start()
        pending = asyncio.gather(*(batcher.submit(i) for i in range(6)))
        await asyncio.sleep(0)
        await batcher.stop()
        return await pending

    assert asyncio.run(scenario()) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
