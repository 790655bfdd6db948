"""Static checks of what cannot run here (no Docker engine): Dockerfiles, compose, Prometheus."""

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


def test_kubernetes_manifests_probe_the_health_routes():
    manifests = sorted((ROOT / "infra/k8s").glob("*.yaml"))
    assert len(manifests) >= 3
    for manifest in manifests:
        docs = list(yaml.safe_load_all(manifest.read_text()))
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", manifest
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", manifest


def test_kubernetes_api_keys_come_from_secrets_that_must_exist():
    """A missing Secret must stop the pod, never start the API open (issue #12)."""
    for manifest in sorted((ROOT / "infra/k8s").glob("*.yaml")):
        docs = list(yaml.safe_load_all(manifest.read_text()))
        pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        keys_file = next(e["value"] for n, e in env.items() if n.endswith("_API_KEYS_FILE"))
        volume = next(v for v in pod["volumes"] if "secret" in v)
        assert volume["secret"]["optional"] is False, manifest
        mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
        assert keys_file.startswith(mount["mountPath"] + "/"), manifest
        for e in env.values():
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            assert ref is None or ref.get("optional") is False, (manifest, e["name"])
