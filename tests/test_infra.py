"""Static checks of what cannot run here (no Docker engine): Dockerfiles, compose, Prometheus.
Kubernetes: tests/test_k8s.py."""

import subprocess
from pathlib import Path

import yaml

from .conftest import need

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted(ROOT.glob("projects/*/Dockerfile"))


def test_dockerfiles_pass_hadolint_and_follow_the_pattern():
    hadolint = need("hadolint")
    assert DOCKERFILES
    for dockerfile in DOCKERFILES:
        result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        text = dockerfile.read_text()
        assert text.count("FROM ") >= 2, "multi-stage"
        assert "-slim" in text and "USER 10001" in text and "HEALTHCHECK" in text
        instructions = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
        assert "/healthz" in instructions
        if dockerfile.parent.name != "llm_chat":  # generation needs torch; the others must not
            assert "torch" not in instructions.lower(), dockerfile


def test_compose_config_is_valid_and_complete():
    compose = need("docker-compose")
    result = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    apps = {"image-classifier", "semantic-search", "llm-chat", "rag-chatbot"}
    assert apps | {"prometheus", "grafana", "mlflow"} <= set(services)
    for app in apps:
        assert "healthz" in " ".join(services[app]["healthcheck"]["test"])
