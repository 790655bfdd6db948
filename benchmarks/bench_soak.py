"""Soak: each service under 16 concurrent clients for 5 minutes, with a mix of valid and hostile
requests (megabyte strings, decompression bombs, nonsense JSON, absurd limits).

Reports, per service: answers by request kind and status, p50/p99 latency over everything, and
the process tree's RSS at the start and the end of the soak. A service passes when it answered
only designed statuses (2xx, 4xx, 429, 503: no 500, no dropped connection or timeout), every
valid request succeeded or was shed with 503, and RSS at the end is within 10% of the start.

    python benchmarks/bench_soak.py                 # the four services on tiny models, 5 min each
    python benchmarks/bench_soak.py --seconds 30 --services llm_chat

Services run on the tiny test models (`<project>.testing`), so what is measured is the serving
stack's robustness, not model speed. Writes reports/soak.json.
"""

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from soak_calls import classifier_calls, rag_calls, search_calls
from soak_llm_calls import llm_chat_calls

OUT = Path("reports/soak.json")
SERVICES = ("image_classifier", "semantic_search", "llm_chat", "rag_chatbot")


def calls_for(service: str, model: str) -> list:
    """The request mix; `model` is the id the service lists first in /v1/models."""
    if service == "image_classifier":
        return classifier_calls()
    if service == "semantic_search":
        return search_calls(model)
    if service == "llm_chat":
        return llm_chat_calls(model)
    if service == "rag_chatbot":
        return rag_calls()
    raise ValueError(service)


def verdict(report: dict) -> dict:
    """What the soak asks for: designed statuses only, valid requests served, RSS flat."""
    undesigned = {}
    for kind, counts in report["statuses"].items():
        for status, n in counts.items():
            designed = status.isdigit() and (int(status) < 500 or status == "503")
            if not designed or (kind.startswith("valid") and status not in {"200", "201", "503"}):
                undesigned[f"{kind}: {status}"] = n
    rss = report.get("rss_mb", {})
    growth = (rss["end"] - rss["start"]) / rss["start"] if rss.get("start") else None
    return {
        "undesigned": undesigned,
        "rss_growth": None if growth is None else round(growth, 3),
        "passed": not undesigned and growth is not None and growth <= 0.10,
    }


def soak(service: str, args: argparse.Namespace, scratch: Path) -> dict:
    import httpx

    from mlstack.loadtest import mixed_load, serve_process

    port = args.port + SERVICES.index(service)
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        f"{service}.testing",
        str(scratch / service),
        "--port",
        str(port),
        "--api-key",
        "soak-key",
    ]
    headers = {"Authorization": "Bearer soak-key"}
    with serve_process(cmd, {"PYTHONUNBUFFERED": "1"}, url, ready_s=600) as proc:
        model = httpx.get(f"{url}/v1/models", headers=headers).json()["data"][0]["id"]
        calls = calls_for(service, model)
        print(f"{service}: warming up", flush=True)
        asyncio.run(mixed_load(url, calls, clients=args.clients, seconds=10, headers=headers))
        print(f"{service}: soaking {args.seconds:.0f} s with {args.clients} clients", flush=True)
        report = asyncio.run(
            mixed_load(
                url,
                calls,
                clients=args.clients,
                seconds=args.seconds,
                headers=headers,
                pid=proc.pid,
                timeout_s=60,
            )
        )
    report["verdict"] = verdict(report)
    print(json.dumps({service: report}, indent=2), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--services", nargs="+", default=list(SERVICES), choices=SERVICES)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--port", type=int, default=8190)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        for service in args.services:
            results[service] = soak(service, args, Path(scratch))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(
                json.dumps(results, indent=2)
            )  # after each: a long run keeps its parts
    failed = [s for s in args.services if not results[s]["verdict"]["passed"]]
    print("soak:", "all passed" if not failed else f"failed: {', '.join(failed)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
