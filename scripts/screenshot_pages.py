"""How scripts/screenshots.py drives each demo page through one real request in the browser;
each returns what the page answered, for the progress line."""

from pathlib import Path
from typing import Any

from screenshot_services import DIGIT, ROOT

SEARCH_QUERY = "who painted the sistine chapel"
CHAT_PROMPT = "In two sentences: why is the sky blue?"
RAG_QUESTION = "Who painted the Mona Lisa?"


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
