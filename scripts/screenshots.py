"""`make screenshots`: starts each service on a free 127.0.0.1 port, drives its demo page
through one real request in a headless Chromium (Playwright on Debian's `chromium`, no browser
download), saves a PNG and stops the service by its PID.

Serves the models `make demo` builds (models/, data/). A service whose models are missing is
skipped with the paths it needs; where only the image classifier's champion is missing, its
trained ResNet stage output is served instead and the output says so.

    python scripts/screenshots.py --out docs/img [--only llm rag]
"""

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from screenshot_pages import drive_chat, drive_classifier, drive_rag, drive_search
from screenshot_services import (
    Service,
    free_port,
    image_classifier,
    llm_chat,
    missing,
    rag_chatbot,
    running,
    semantic_search,
)

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
