"""The README's image table, generated: each service image's size and build time, measured by the
container tests (tests/containers/) on the engine scripts/docker_lab.sh starts.

python scripts/image_sizes.py --measure  # docker image inspect -> reports/containers/images.json
python scripts/image_sizes.py            # print the markdown block
(`make report` renders the block into README.md through scripts/results_table.py)
"""

import argparse
import datetime
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports/containers/images.json"
SERVICES = ("image_classifier", "semantic_search", "rag_chatbot", "llm_chat")
LAB = Path(os.environ.get("LAB", "/tmp/ml-docker-lab"))


def measure(tag: str) -> dict:
    """Sizes from the engine (DOCKER_HOST), build seconds from docker_lab.sh's build-times.json."""
    times_file = LAB / "build-times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    images = {}
    for service in SERVICES:
        image = f"ghcr.io/ml-monorepo/{service}:{tag}"
        size = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Size}}", image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        images[service] = {"bytes": int(size), "build_s": times.get(service)}
    base = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Size}}", "python:3.11-slim"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        "measured": datetime.date.today().isoformat(),
        "base_bytes": int(base),
        "images": images,
    }


def render(report: dict) -> str:
    lines = [
        f"Service images (measured {report['measured']} by `tests/containers/`; the base "
        f"`python:3.11-slim` is {report['base_bytes'] / 1e6:.0f} MB of each; build: seconds of "
        "`docker build` in that run on two shared cores at nice 19, less where layers were "
        "cached; from `reports/containers/images.json`)",
        "",
        "| image | size | build |",
        "|---|---|---|",
    ]
    for service, image in report["images"].items():
        build = f"{image['build_s']} s" if image["build_s"] is not None else "n/a"
        lines.append(f"| {service} | {image['bytes'] / 1e9:.2f} GB | {build} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="inspect the images, write JSON")
    parser.add_argument("--tag", default=os.environ.get("TAG", "lab"))
    args = parser.parse_args()
    if args.measure:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(measure(args.tag), indent=2) + "\n")
    if not args.measure:
        print(render(json.loads(REPORT.read_text())))


if __name__ == "__main__":
    main()
