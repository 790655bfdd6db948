"""Static checks of the images and the compose file: hadolint, the one Dockerfile template the
four services follow, and `docker-compose config`. tests/containers/ builds and runs them for real
where a Docker engine can be started. Kubernetes: tests/test_k8s.py."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import need

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra/docker/service.Dockerfile"
DOCKERFILES = sorted(ROOT.glob("projects/*/Dockerfile"))
APPS = {"image-classifier", "semantic-search", "llm-chat", "rag-chatbot"}
GRACEFUL_SHUTDOWN_S = 20  # mlstack.serve.settings: graceful_shutdown_s's default


def test_dockerfiles_pass_hadolint_and_follow_the_template():
    hadolint = need("hadolint")
    assert len(DOCKERFILES) == 4
    for dockerfile in [TEMPLATE, *DOCKERFILES]:
        result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        text = dockerfile.read_text()
        assert text.count("FROM ") >= 2, "multi-stage"
        assert "USER 10001" in text and "STOPSIGNAL SIGTERM" in text
        instructions = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
        # healthy must mean ready (model loaded), or depends_on: service_healthy means nothing
        assert "/readyz" in instructions and "/healthz" not in instructions
        if dockerfile.parent.name not in ("llm_chat", "docker"):  # only generation needs torch
            assert "torch" not in instructions.lower(), dockerfile
    # the four files are the template with compose's build args: regenerated, nothing changes
    check = [sys.executable, str(ROOT / "scripts/render_dockerfiles.py"), "--check"]
    result = subprocess.run(check, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_release_workflow_builds_each_generated_dockerfile_as_is():
    """docker.yml passes no build args: the per-project files carry compose's as defaults."""
    workflow = yaml.safe_load((ROOT / ".github/workflows/docker.yml").read_text())
    job = workflow["jobs"]["image"]
    assert {f"projects/{s}/Dockerfile" for s in job["strategy"]["matrix"]["service"]} == {
        str(d.relative_to(ROOT)) for d in DOCKERFILES
    }
    builds = [s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push-action@")]
    for step in builds:
        assert step["with"]["file"] == "projects/${{ matrix.service }}/Dockerfile"
        assert "build-args" not in step["with"]
    # a pull request that changes what an image copies builds it
    paths = workflow[True]["pull_request"]["paths"]  # PyYAML reads the key `on` as True
    assert {"projects/**", "libs/**", "infra/docker/**", "requirements*.lock"} <= set(paths)
    for dockerfile in DOCKERFILES:  # every lock a Dockerfile names exists
        for lock in re.findall(
            r'^ARG (?:SHARED_)?LOCK="?([^"\n]+)"?$', dockerfile.read_text(), re.M
        ):
            assert (ROOT / lock).is_file(), (dockerfile, lock)


def compose_config(**env: str) -> subprocess.CompletedProcess:
    compose = need("docker-compose")
    return subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("GF_")} | env,
    )


def test_compose_config_is_valid_and_complete():
    result = compose_config(GF_SECURITY_ADMIN_PASSWORD="from-the-test")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert APPS | {"prometheus", "grafana", "mlflow"} <= set(services)
    for app in APPS:
        service = services[app]
        assert service["build"]["dockerfile"] == "infra/docker/service.Dockerfile"
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]
        grace = service["stop_grace_period"]
        assert grace.endswith("s") and int(grace[:-1]) > GRACEFUL_SHUTDOWN_S, grace
    assert services["rag-chatbot"]["depends_on"]["llm-chat"]["condition"] == "service_healthy"
    for name, service in services.items():  # nothing listens beyond this machine
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else port.split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == "from-the-test"
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_compose_refuses_to_start_grafana_without_an_admin_password():
    result = compose_config()
    assert result.returncode != 0
    assert "GF_SECURITY_ADMIN_PASSWORD" in result.stderr
