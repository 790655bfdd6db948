"""The services scripts/screenshots.py photographs: how each is started (its command, the models
it needs, its environment), and starting one on a free port until /readyz, then stopping it by its
PID."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's console scripts (image-classifier serve, ...)
DIGIT = "data/image_classifier/images/3/0003.png"  # any digit from the prepared data set


@dataclass
class Service:
    name: str
    command: list[str]
    needs: list[str]
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing(paths: list[str]) -> list[str]:
    return [p for p in paths if not (ROOT / p).exists()]


def image_classifier(port: int) -> Service:
    svc = Service(
        "image_classifier",
        [str(BIN / "image-classifier"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        needs=["models/image_classifier/champion.json", DIGIT],
    )
    fallback = "models/image_classifier/resnet/model.int8.onnx"
    if missing(svc.needs[:1]) and not missing([fallback]):
        # ic_register (the promotion gate) has not run: serve a trained model so the page works.
        svc.needs = [fallback, DIGIT]
        svc.env["IMAGE_CLASSIFIER_MODEL_PATH"] = fallback
        svc.notes.append(f"champion.json missing (ic_register not run): serving {fallback}")
    return svc


def semantic_search(port: int, state: Path) -> Service:
    return Service(
        "semantic_search",
        [str(BIN / "semantic-search"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        needs=["models/semantic_search/champion/encoder", "models/semantic_search/champion/index"],
        # Its own copy of the champion's index, so the demo's service-index stays untouched.
        env={"SEMANTIC_SEARCH_INDEX_URI": str(state / "search-index")},
    )


def llm_chat(port: int) -> Service:
    return Service(
        "llm_chat",
        [str(BIN / "llm-chat"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        needs=["models/llm_chat/base/model.safetensors"],
    )


def rag_chatbot(port: int, llm_port: int, state: Path) -> Service:
    return Service(
        "rag_chatbot",
        [str(BIN / "rag-chatbot"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        needs=["data/rag_chatbot/index-64", "models/semantic_search/encoder"],  # the served size
        # A fresh index seeded from the pipeline's, so the demo's own uploads stay untouched.
        env={
            "RAG_CHATBOT_INDEX_URI": str(state / "index"),
            "RAG_CHATBOT_UPLOADS_DIR": str(state / "uploads"),
            "RAG_CHATBOT_GENERATOR_URL": f"http://127.0.0.1:{llm_port}/v1",
        },
    )


@contextlib.contextmanager
def running(svc: Service, port: int, logs: Path, timeout_s: float) -> Iterator[str]:
    """Starts the service in its own session, waits for /readyz, yields its URL, then stops it
    by PID: SIGTERM to its process group (graceful shutdown), SIGKILL if it lingers."""
    log_path = logs / f"{svc.name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            svc.command,
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **svc.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: uvicorn's children stop with it
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log_path, timeout_s)
        yield url
    finally:
        stop(proc)


def wait_ready(url: str, proc: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with (
            contextlib.suppress(OSError),  # refused while starting; 503 while loading
            urllib.request.urlopen(f"{url}/readyz", timeout=2) as r,
        ):
            if r.status == 200:
                return
        time.sleep(1)
    tail = log_path.read_text(errors="replace").splitlines()[-15:]
    raise RuntimeError(f"{url} not ready (exit {proc.poll()}); log tail:\n" + "\n".join(tail))


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # the group whose leader is the process we started
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
