"""The kit's defences over real HTTP: key rotation, the readiness gate, the bounded CPU pool,
an OpenAPI that documents every status, correct 405s, hostile bodies."""

import asyncio
import threading
import time
import tracemalloc
from typing import Annotated

import httpx
import pytest
from fastapi import Depends

from mlstack.serve import ServeSettings, create_app, offload, requires
from mlstack.serve.auth import ApiKeys
from mlstack.serve.json_keys import repeated_key
from mlstack.testing import live_server

from .conftest import EchoModel
from .test_serve_app import assert_envelope


def test_several_keys_and_a_rotated_key_file(tmp_path, make_app, monkeypatch):
    keys = tmp_path / "keys"
    keys.write_text("# rotation: new key first\nnew-key\nold-key\n")
    app = make_app(api_key="env-a, env-b", api_keys_file=keys)
    with live_server(app) as base:

        def status(key: str) -> int:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            return httpx.get(f"{base}/v1/models", headers=headers).status_code

        assert [status(k) for k in ("env-a", "env-b", "new-key", "old-key")] == [200] * 4
        assert (
            status("") == status("new-key-and-more") == status("# rotation: new key first") == 401
        )
        keys.write_text("new-key\n")  # the old key retired, without a restart
        time.sleep(1.1)
        assert status("old-key") == 401 and status("new-key") == 200
        keys.unlink()  # a Secret mid-swap must never open the API
        time.sleep(1.1)
        assert status("") == 401 and status("new-key") == 200


def test_a_named_key_file_that_is_missing_or_empty_refuses_to_start(tmp_path):
    with pytest.raises(FileNotFoundError):
        ApiKeys(None, tmp_path / "absent")
    (tmp_path / "empty").write_text("\n# nothing\n")
    with pytest.raises(ValueError, match="holds no key"):
        ApiKeys(None, tmp_path / "empty")
    assert not ApiKeys(" , ").enabled


def _gated_app(load_s: float, fail: bool = False):
    def load():
        time.sleep(load_s)
        if fail:
            raise OSError("truncated model file")
        app.state.resources["answer"] = 42
        return [EchoModel()]

    app = create_app(title="gated", settings=ServeSettings(), load_models=load)
    answer_dep = Annotated[int, Depends(requires("answer"))]

    @app.get("/v1/answer")
    def answer(value: answer_dep) -> dict:
        return {"answer": value}

    return app


def test_gate_answers_503_until_loaded_then_the_resource():
    with live_server(_gated_app(1.0), wait_ready=False) as base:
        r = httpx.get(f"{base}/v1/answer")
        assert_envelope(r, 503, "not_ready")
        assert r.headers["retry-after"] == "1"
        for _ in range(100):
            if httpx.get(f"{base}/readyz").status_code == 200:
                break
            time.sleep(0.05)
        assert httpx.get(f"{base}/v1/answer").json() == {"answer": 42}


def test_gate_after_a_failed_load_is_503_with_the_reason_and_liveness_fails():
    with live_server(_gated_app(0.0, fail=True), wait_ready=False) as base:
        for _ in range(100):
            if httpx.get(f"{base}/healthz").status_code == 503:
                break
            time.sleep(0.05)
        error = assert_envelope(httpx.get(f"{base}/v1/answer"), 503, "not_ready")
        assert "truncated model file" in error["message"]
        assert "truncated model file" in httpx.get(f"{base}/readyz").json()["error"]["message"]
        assert httpx.get(f"{base}/healthz").status_code == 503


def test_offload_keeps_the_loop_free_and_refuses_past_its_queue():
    release = threading.Event()
    app = create_app(title="cpu", settings=ServeSettings(cpu_workers=1, cpu_queue=2))

    @app.post("/v1/work")
    async def work() -> dict:
        await offload(release.wait, 10)
        return {"done": True}

    with live_server(app) as base, httpx.Client(timeout=15) as client:
        pool = [threading.Thread(target=client.post, args=(f"{base}/v1/work",)) for _ in range(2)]
        for t in pool:
            t.start()
        time.sleep(0.3)
        started = time.perf_counter()
        assert client.get(f"{base}/healthz").status_code == 200  # the loop is not blocked
        assert time.perf_counter() - started < 0.5
        r = client.post(f"{base}/v1/work")  # a third while two wait: refused at once
        error = assert_envelope(r, 503, "busy")
        assert error["limit"] == 2 and r.headers["retry-after"] == "1"
        release.set()
        for t in pool:
            t.join()
        assert client.post(f"{base}/v1/work").json() == {"done": True}


def test_openapi_documents_every_status_in_the_envelope(make_app):
    app = make_app()

    @app.get("/v1/things/{thing_id}")
    def get_thing(thing_id: str) -> dict:
        return {}

    @app.delete("/v1/things/{thing_id}")
    def delete_thing(thing_id: str) -> dict:
        return {}

    with live_server(app) as base:
        spec = httpx.get(f"{base}/openapi.json").json()
        assert "HTTPValidationError" not in spec["components"]["schemas"]
        double = spec["paths"]["/v1/double"]["post"]["responses"]
        assert {"401", "413", "422", "503"} <= set(double)
        envelope = double["422"]["content"]["application/json"]["schema"]
        assert envelope == {"$ref": "#/components/schemas/ErrorEnvelope"}
        assert "503" in spec["paths"]["/healthz"]["get"]["responses"]
        # 405 names every method of the path, not only the first route's
        r = httpx.put(f"{base}/v1/things/a")
        assert_envelope(r, 405, "method_not_allowed")
        assert set(r.headers["allow"].split(", ")) == {"GET", "DELETE"}


def test_hostile_bodies_are_4xx_fast(make_app):
    with live_server(make_app()) as base, httpx.Client(timeout=5) as client:
        headers = {"content-type": "application/json"}
        cases = {
            "nested": b"[" * 100_000 + b"]" * 100_000,
            "nested object": b'{"values": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
            "invalid utf-8": b'{"values": ["\xff\xfe"]}',
            "nul": b'{"values": [1\x00]}',
            "megabyte number": b'{"values": [' + b"9" * 1_000_000 + b"]}",
            "empty": b"",
        }
        for name, body in cases.items():
            started = time.perf_counter()
            r = client.post(f"{base}/v1/double", content=body, headers=headers)
            assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:200])
            assert r.json()["error"]["param"] is not None, name
            assert time.perf_counter() - started < 1.0, name


PAD = b'{"a": 1},' * 250_000  # 2 MB of small objects: the most work a key check can face


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"values": [1], "values": [2]}', "values"),
        (b'{"values": [1], "extra": {"a": 1, "b": [{"k": 1, "k": 2}]}}', "extra.b.0.k"),
        (b'{"values": [1], "pad": [' + PAD + b'{"a": 1, "a": 2}]}', "a"),  # the key alone
    ],
    ids=["top level", "nested", "after 2 MB"],
)
def test_a_repeated_json_key_is_a_400_naming_it(make_app, raw, param):
    # Python's json kept the last value: {"values": [1], "values": [2]} doubled [2] silently.
    with live_server(make_app()) as base:
        started = time.perf_counter()
        r = httpx.post(
            f"{base}/v1/double", content=raw, headers={"content-type": "application/json"}
        )
        assert time.perf_counter() - started < 2.0  # slack for a loaded CI worker
        assert_envelope(r, 400, "duplicate_key")
        assert r.json()["error"]["param"] == param
        ok = httpx.post(f"{base}/v1/double", json={"values": [1, 2]})
        assert ok.json() == {"results": [2.0, 4.0]}


def test_a_repeat_deep_under_long_keys_beside_a_wide_array_is_found_in_linear_memory(make_app):
    # The walk spelled each child's whole path when pushing it: 100 objects with 2,000-character
    # keys around 16,000 empty arrays (249 KB) took 3.5 s and 3.1 GB before naming the repeat.
    keys = [f"{'k' * 2000}{i}" for i in range(100)]
    wide = "[" + "[]," * 16_000 + '{"x": 1, "x": 2}]'
    inner = "".join(f'{{"{key}": ' for key in keys) + wide + "}" * len(keys)
    raw = ('{"values": [1], "extra": ' + inner + "}").encode()
    where = "extra." + "".join(f"{key}." for key in keys) + "16000.x"
    with live_server(make_app()) as base:
        started = time.perf_counter()
        r = httpx.post(
            f"{base}/v1/double", content=raw, headers={"content-type": "application/json"}
        )
        assert time.perf_counter() - started < 2.0
        assert_envelope(r, 400, "duplicate_key")
        assert r.json()["error"]["param"] == where
    tracemalloc.start()
    try:
        assert repeated_key(raw) == where
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 1024 * 1024, peak  # a few MB: the parsed body and one path


def test_offload_runs_the_function_with_its_arguments():
    assert asyncio.run(offload(divmod, 7, 2)) == (3, 1)


def test_the_kit_passes_schemathesis_with_every_check():
    from fastapi import Body
    from pydantic import Field

    from mlstack.serve import Hub
    from mlstack.testing import schemathesis_run

    app = create_app(
        title="t", settings=ServeSettings(api_key="k"), load_models=lambda: [EchoModel()]
    )
    number = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-1e300, le=1e300)]

    @app.post("/v1/double")
    async def double(hub: Hub, values: list[number] = Body(..., embed=True, max_length=64)):
        return {"results": await hub.get().predict(values)}

    with live_server(app) as base:
        result = schemathesis_run(base, api_key="k")
    assert result.returncode == 0, result.stdout[-4000:]


def test_exit_on_load_failure_ends_the_process_with_status_3(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "serve.py"
    script.write_text(
        "from mlstack.serve import ServeSettings, create_app\n"
        "from mlstack.testing import live_server\n"
        "def broken():\n    raise OSError('model file truncated')\n"
        "app = create_app(title='t', settings=ServeSettings(exit_on_load_failure=True),"
        " load_models=broken)\n"
        "with live_server(app, wait_ready=False):\n    import time; time.sleep(30)\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60)
    assert result.returncode == 3, result.stderr[-2000:]


def test_a_field_named_like_a_location_keeps_its_name_in_param():
    from mlstack.serve.errors import validation_error

    err = validation_error(
        [
            {
                "loc": ("body", "query"),
                "msg": "too long",
                "type": "string_too_long",
                "ctx": {"max_length": 4000},
            }
        ]
    )
    assert (err.param, err.limit) == ("query", 4000)
    err = validation_error([{"loc": ("query", "k"), "msg": "bad", "type": "int_parsing"}])
    assert err.param == "k"
