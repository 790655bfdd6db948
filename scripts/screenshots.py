"""`make screenshots`: starts each service on a free 127.0.0.1 port, drives its demo page
through one real request in a headless Chromium (Playwright on Debian's `chromium`, no browser
download), saves a PNG and stops the service by its PID.

Serves the models `make demo` builds (models/, data/). A service whose models are missing is
skipped with the paths it needs; where only the image classifier's champion is missing, its
trained ResNet stage output is served instead and the output says so.

    python scripts/screenshots.py --out docs/img [--only llm rag]
"""

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's console scripts (image-classifier serve, ...)
VIEWPORT = {"width": 1180, "height": 820}
CHROMIUM_ARGS = [  # STACK.md: the flags that keep a headless Chromium offline and quiet here
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
DIGIT = "data/image_classifier/images/3/0003.png"  # any digit from the prepared data set
SEARCH_QUERY = "who painted the sistine chapel"
CHAT_PROMPT = "In two sentences: why is the sky blue?"
RAG_QUESTION = "Who painted the Mona Lisa?"


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
        needs=["data/rag_chatbot/index-160", "models/semantic_search/encoder"],
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


def drive_classifier(page: Any, url: str, tmp: Path) -> str:
    from PIL import Image

    # The 8x8 digit enlarged (nearest neighbour, so the pixels stay the same): the service
    # resizes to the model's input anyway, and the page's preview becomes readable.
    big = tmp / "digit.png"
    Image.open(ROOT / DIGIT).resize((128, 128), Image.Resampling.NEAREST).save(big)
    page.goto(f"{url}/demo/")
    page.wait_for_selector("#model option", state="attached")  # options never count as visible
    page.set_input_files("#file", str(big))
    page.wait_for_selector("#results .bar")
    top = page.inner_text("#results .bar .label")
    return f"top label {top!r} for {DIGIT}"


def drive_search(page: Any, url: str, tmp: Path) -> str:
    page.goto(f"{url}/demo/")
    page.wait_for_function("document.getElementById('count').textContent !== '…'")
    page.fill("#q", SEARCH_QUERY)
    for _ in range(2):  # the first search after start-up is cold; show the second one's timings
        page.evaluate("document.getElementById('status').textContent = ''")
        page.click("#f button")
        page.wait_for_function("document.getElementById('status').textContent !== ''")
    page.wait_for_selector("#results .hit")
    return page.inner_text("#status")


def drive_chat(page: Any, url: str, tmp: Path) -> str:
    page.goto(f"{url}/demo/")
    page.wait_for_function(
        "!['…', 'not loaded'].includes(document.getElementById('model').textContent)"
    )
    page.fill("#temperature", "0")  # greedy: the same picture every run
    page.fill("#max", "96")
    page.fill("#q", CHAT_PROMPT)
    page.click("#send")
    page.wait_for_selector(".msg.assistant span:not(:empty)")
    page.wait_for_function("!document.getElementById('send').disabled", timeout=120_000)
    return page.inner_text(".msg.assistant")


def drive_rag(page: Any, url: str, tmp: Path) -> str:
    page.goto(f"{url}/demo/")
    page.wait_for_load_state("networkidle")  # the document list has loaded
    page.fill("#q", RAG_QUESTION)
    page.click("#send")
    page.wait_for_selector(".msg.assistant")
    page.wait_for_function("!document.getElementById('send').disabled", timeout=180_000)
    return page.inner_text(".msg.assistant")


def shoot(browser: Any, name: str, url: str, drive: Callable, out: Path, tmp: Path) -> None:
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(60_000)
    try:
        said = drive(page, url, tmp)
        page.screenshot(path=str(out / f"demo_{name}.png"))
        print(f"{name}: {out / f'demo_{name}.png'} ({said.strip()[:100]!r})")
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="where PNGs go")
    names = ["classifier", "search", "llm", "rag"]
    parser.add_argument("--only", nargs="*", choices=names, default=names, help="these pages only")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser binary")
    parser.add_argument("--ready-timeout", type=float, default=240.0, help="seconds per service")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines in order with the errors
    chromium = shutil.which(args.chromium)
    if chromium is None:
        print(f"{args.chromium} not found: `apt-get install -y chromium` (Debian)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="screenshots-") as t, sync_playwright() as pw:
        tmp = Path(t)
        # launch() gives the browser a fresh temporary profile of its own.
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        # One service at a time on these 2 cores; the RAG page needs the LLM chat service as
        # its generator, so that pair runs together (the LLM started once for both pages).
        plan = [
            ("classifier", image_classifier, drive_classifier),
            ("search", semantic_search, drive_search),
        ]
        for name, make, drive in plan:
            if name not in args.only:
                continue
            port = free_port()
            svc = make(port) if name == "classifier" else make(port, tmp)
            failures += not run_one(svc, port, name, drive, browser, args, tmp)
        if {"llm", "rag"} & set(args.only):
            failures += run_llm_and_rag(browser, args, tmp)
        browser.close()
    return 1 if failures else 0


def run_one(
    svc: Service,
    port: int,
    name: str,
    drive: Callable,
    browser: Any,
    args: argparse.Namespace,
    tmp: Path,
) -> bool:
    if gone := missing(svc.needs):
        print(f"{name}: SKIPPED, models missing ({', '.join(gone)}): run `make demo` first")
        return False
    for note in svc.notes:
        print(f"{name}: NOTE {note}")
    try:
        with running(svc, port, tmp, args.ready_timeout) as url:
            shoot(browser, name, url, drive, args.out, tmp)
        return True
    except Exception as exc:  # one page failing should not cost the others their pictures
        print(f"{name}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
        return False


def run_llm_and_rag(browser: Any, args: argparse.Namespace, tmp: Path) -> int:
    llm_port, rag_port = free_port(), free_port()
    llm = llm_chat(llm_port)
    if gone := missing(llm.needs):
        print(f"llm, rag: SKIPPED, models missing ({', '.join(gone)}): run `make demo` first")
        return len({"llm", "rag"} & set(args.only))
    failures = 0
    try:
        with running(llm, llm_port, tmp, args.ready_timeout) as url:
            if "llm" in args.only:
                try:
                    shoot(browser, "llm", url, drive_chat, args.out, tmp)
                except Exception as exc:
                    print(f"llm: FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
                    failures += 1
            if "rag" in args.only:
                rag = rag_chatbot(rag_port, llm_port, tmp / "rag")
                failures += not run_one(rag, rag_port, "rag", drive_rag, browser, args, tmp)
    except RuntimeError as exc:  # the LLM service never became ready
        print(f"llm: FAILED {exc}", file=sys.stderr)
        failures += len({"llm", "rag"} & set(args.only))
    return failures


if __name__ == "__main__":
    sys.exit(main())
