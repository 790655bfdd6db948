"""serve_tiny: the `python -m <project>.testing FOLDER --port P [--api-key K]` command that
bench_soak.py starts each service with; the app is built from FOLDER and the key, then served on
127.0.0.1."""

from pathlib import Path

import pytest

from mlstack import testing


@pytest.fixture
def served(monkeypatch):
    calls = []
    monkeypatch.setattr(testing.uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    return calls


def test_the_app_is_built_from_the_folder_and_key_and_served_on_loopback(served):
    built = []

    def make_app(folder: Path, api_key: str | None) -> str:
        built.append((folder, api_key))
        return "the app"

    testing.serve_tiny("d", 8765, make_app, ["/tmp/tiny", "--port", "9001", "--api-key", "k"])
    assert built == [(Path("/tmp/tiny"), "k")]
    assert served == [("the app", {"host": "127.0.0.1", "port": 9001, "log_level": "warning"})]


def test_the_default_port_and_no_key(served):
    testing.serve_tiny("d", 8765, lambda folder, api_key: (folder, api_key), ["f"])
    loopback = {"host": "127.0.0.1", "port": 8765, "log_level": "warning"}
    assert served == [((Path("f"), None), loopback)]
