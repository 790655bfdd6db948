"""serve_tiny: the `python -m <project>.testing FOLDER --port P [--api-key K]` command that
bench_soak.py starts each service with; the app is built from FOLDER and the key, then served on
127.0.0.1. serve_tiny_workers: the same with `--workers N`, the settings passed to the workers
in the environment."""

import contextlib
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TINY_TEST_")
    port: int = 0
    api_key: str | None = None
    folder: str = ""


def test_workers_build_the_app_from_the_factory_and_the_settings_in_the_environment(
    served, monkeypatch
):
    monkeypatch.setattr(testing.os, "environ", {})  # what the workers would inherit
    steps = []

    @contextlib.contextmanager
    def settings_for(folder: Path, **overrides):
        steps.append(("started", folder, overrides))
        yield _Settings(folder=str(folder), **overrides)
        steps.append("stopped")  # after uvicorn returned

    argv = ["/tmp/tiny", "--port", "9002", "--api-key", "k", "--workers", "2"]
    testing.serve_tiny_workers("d", 8004, "pkg.service:app_factory", settings_for, argv)
    assert steps == [("started", Path("/tmp/tiny"), {"port": 9002, "api_key": "k"}), "stopped"]
    assert testing.os.environ == {
        "TINY_TEST_PORT": "9002",
        "TINY_TEST_API_KEY": "k",
        "TINY_TEST_FOLDER": "/tmp/tiny",
    }
    options = {"host": "127.0.0.1", "port": 9002, "workers": 2, "log_level": "warning"}
    assert served == [("pkg.service:app_factory", {"factory": True, **options})]


def test_one_worker_by_default_and_no_key(served, monkeypatch):
    monkeypatch.setattr(testing.os, "environ", {})
    given = []

    def settings_for(folder: Path, **overrides):
        given.append(overrides)
        return contextlib.nullcontext(_Settings(**overrides))

    testing.serve_tiny_workers("d", 8004, "pkg.service:app_factory", settings_for, ["f"])
    assert given == [{"port": 8004}]
    assert served[0][1]["workers"] == 1 and served[0][1]["port"] == 8004
