"""Drives scripts/docker_lab.sh and docker-compose for the container tests: a throwaway Docker
engine, the four images, tiny models in place of `dvc repro`'s, and a compose file made from the
repository's own (the same services, build args, healthchecks, read-only roots, grace periods)
with only the host paths swapped for the tiny models and no published ports (the containers are
reached on their bridge addresses, so nothing clashes with a developer's `make demo`)."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LAB_SCRIPT = ROOT / "scripts/docker_lab.sh"
LAB = Path(os.environ.get("LAB", "/tmp/ml-docker-lab"))
APPS = {"image-classifier": 8001, "semantic-search": 8002, "llm-chat": 8003, "rag-chatbot": 8004}
PROJECT = "mlsmoke"
ENV = os.environ | {
    "LAB": str(LAB),
    "DOCKER_HOST": f"unix://{LAB}/docker.sock",
    "DOCKER_BUILDKIT": "0",
    "GITHUB_REPOSITORY": "ml-monorepo",  # the compose file's image names: ghcr.io/ml-monorepo/...
    "TAG": "lab",
    "GF_SECURITY_ADMIN_PASSWORD": "unused-by-these-tests",
}


def lab(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LAB_SCRIPT), *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(
        ["docker", *args], env=ENV, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def tiny_models(folder: Path) -> dict[str, Path]:
    """The tiny models of the projects' testing modules, laid out like `dvc repro`'s models/ and
    readable by every user (uid 10001 in the containers); and the tiny search corpus index."""
    from image_classifier.testing import tiny_onnx
    from llm_chat.convert import readable_by_all
    from llm_chat.testing import save_tiny_llama
    from semantic_search.testing import build_tiny_encoder, tiny_corpus_index

    models = folder / "models"
    tiny_onnx(models / "image_classifier")
    # search serves its champion folder; the RAG service embeds with the pipeline's encoder
    encoder = build_tiny_encoder(models / "semantic_search" / "champion")
    shutil.copytree(encoder, models / "semantic_search" / "encoder")
    save_tiny_llama(models / "llm_chat" / "base")
    corpus = tiny_corpus_index(folder / "search", encoder)
    rag_corpus = folder / "rag" / "corpus-index"  # none: the RAG index starts from uploads
    rag_corpus.mkdir(parents=True)
    readable_by_all(folder)
    return {"models": models, "search_corpus": corpus, "rag_corpus": rag_corpus}


def smoke_compose(folder: Path, paths: dict[str, Path]) -> Path:
    """docker-compose.yml's four services with the tiny models mounted; written to `folder`."""
    source = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = {}
    for name in APPS:
        service = dict(source["services"][name])
        service.pop("build", None)
        service.pop("ports", None)
        mounts = []
        for volume in service["volumes"]:
            host, target = volume.split(":")[:2]
            if host == "./models":
                volume = f"{paths['models']}:{target}:ro"
            elif host.startswith("./models/semantic_search"):
                volume = f"{paths['search_corpus']}:{target}:ro"
            elif host.startswith("./data/rag_chatbot"):
                volume = f"{paths['rag_corpus']}:{target}:ro"
            mounts.append(volume)
        service["volumes"] = mounts
        service["restart"] = "no"  # a failing service shows as unhealthy, not as a restart loop
        # the same probe, polled every 2 s rather than 15: the first probe only runs one interval
        # after start, so 15 s would add idle minutes (startup, rag-chatbot waiting on llm-chat,
        # the restart) to every run
        service["healthcheck"] = dict(service["healthcheck"], interval="2s")
        services[name] = service
    env = services["image-classifier"].setdefault("environment", {})
    env["IMAGE_CLASSIFIER_MODEL_PATH"] = "/srv/models/image_classifier/digits.onnx"
    services["llm-chat"]["environment"] |= {"LLM_CHAT_SLOTS": "4", "LLM_CHAT_THREADS": "1"}
    volumes = {v: None for s in services.values() for v in s["volumes"] if v[0] not in "/."}
    compose = {"services": services, "volumes": {v.split(":")[0]: None for v in volumes}}
    path = folder / "docker-compose.smoke.yml"
    path.write_text(yaml.safe_dump(compose, sort_keys=False))
    return path


class Compose:
    def __init__(self, file: Path, paths: dict[str, Path]):
        self.file, self.paths = file, paths

    def run(self, *args: str, timeout: float = 300) -> str:
        command = ["docker-compose", "-p", PROJECT, "-f", str(self.file), *args]
        result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command[3:])}: {result.stderr.strip()[-2000:]}")
        return result.stdout.strip()

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service)

    def url(self, service: str) -> str:
        """The service on its bridge address (no host ports are published)."""
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        return f"http://{docker('inspect', '-f', fmt, self.container(service))}:{APPS[service]}"

    def health(self, service: str) -> str:
        return docker("inspect", "-f", "{{.State.Health.Status}}", self.container(service))

    def wait_healthy(self, services, timeout: float = 300) -> dict[str, str]:
        """Waits until each is healthy (the HEALTHCHECK: /readyz) or unhealthy; returns them."""
        deadline, states = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            states = {s: self.health(s) for s in services}
            if all(v in ("healthy", "unhealthy") for v in states.values()):
                break
            time.sleep(2)
        return states

    def logs(self, service: str) -> str:
        return self.run("logs", "--no-color", "--tail", "40", service)


def build_times() -> dict[str, int]:
    path = LAB / "build-times.json"
    return json.loads(path.read_text()) if path.exists() else {}
