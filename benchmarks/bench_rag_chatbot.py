"""RAG chatbot under load, one run:

1. `/v1/retrieve` and `/v1/chat` with an instant fake generator (`rag_chatbot.testing`): what
   our side costs (rewrite-free retrieval, budget, prompt, citations) under concurrent clients;
2. `/v1/chat` with the real LLM chat service generating (`--llm`): answers per second end to end.

The service runs from a scratch copy of the corpus index (data/rag_chatbot/index-160), so the
benchmark never writes to the real one. Writes reports/rag_chatbot/benchmark.json; run after
`dvc repro`.
"""

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

DATA = Path("data/rag_chatbot")
OUT = Path("reports/rag_chatbot/benchmark.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--llm", action="store_true", help="also answer with the LLM chat service")
    parser.add_argument("--port", type=int, default=8094)
    args = parser.parse_args()

    from mlstack.loadtest import http_load, serve_process
    from mlstack.testing import live_server
    from rag_chatbot.testing import FakeLLM

    questions = [
        json.loads(q)["question"] for q in (DATA / "questions.jsonl").read_text().splitlines()
    ]
    chats = [{"messages": [{"role": "user", "content": q}]} for q in questions]
    retrievals = [{"query": q} for q in questions]
    report: dict = {"clients": args.clients, "seconds": args.seconds, "questions": len(questions)}
    url = f"http://127.0.0.1:{args.port}"
    cmd = [sys.executable, "-m", "rag_chatbot.cli", "serve"]

    def env(scratch: str, generator: str) -> dict[str, str]:
        return {
            "RAG_CHATBOT_PORT": str(args.port),
            "RAG_CHATBOT_LOG_LEVEL": "warning",
            "RAG_CHATBOT_INDEX_URI": f"{scratch}/index",
            "RAG_CHATBOT_UPLOADS_DIR": f"{scratch}/uploads",
            "RAG_CHATBOT_CORPUS_INDEX": str(DATA / "index-160"),
            "RAG_CHATBOT_ONNX_THREADS": "1",
            "RAG_CHATBOT_GENERATOR_URL": generator,
            "RAG_CHATBOT_REQUEST_TIMEOUT_S": "300",
        }

    def load(path: str, bodies: list[dict], clients: int, seconds: float) -> dict:
        asyncio.run(
            http_load(url, path, bodies[-50:], clients=clients, seconds=3, timeout_s=300)
        )  # warm-up
        return asyncio.run(
            http_load(url, path, bodies, clients=clients, seconds=seconds, timeout_s=300)
        )

    fake = FakeLLM()
    with (
        tempfile.TemporaryDirectory() as scratch,
        live_server(fake.app(), wait_ready=False) as fake_url,
        serve_process(cmd, env(scratch, fake_url + "/v1"), url),
    ):
        report["retrieve"] = load("/v1/retrieve", retrievals, args.clients, args.seconds)
        report["chat_fake_generator"] = load("/v1/chat", chats, args.clients, args.seconds)
    print(json.dumps(report, indent=2))
    if args.llm:
        llm_port = args.port + 1
        llm_env = {
            "LLM_CHAT_PORT": str(llm_port),
            "LLM_CHAT_LOG_LEVEL": "warning",
            "LLM_CHAT_MODEL_DIR": "models/llm_chat/dpo",
            "LLM_CHAT_SLOTS": "8",
        }
        llm_cmd = [sys.executable, "-m", "llm_chat.cli", "serve"]
        with (
            tempfile.TemporaryDirectory() as scratch,
            serve_process(llm_cmd, llm_env, f"http://127.0.0.1:{llm_port}"),
            serve_process(cmd, env(scratch, f"http://127.0.0.1:{llm_port}/v1"), url),
        ):
            report["chat_llm_chat"] = load("/v1/chat", chats, 8, args.seconds * 3)
        print(json.dumps(report["chat_llm_chat"], indent=2))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
