"""The alert rules: promtool's unit tests (every alert firing and not firing), annotations and
runbooks, and the Prometheus and Alertmanager configs as the real tools read them."""

import re
import subprocess
from pathlib import Path

import yaml

from .conftest import need

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "infra/prometheus"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*_test.yml"))
RUNBOOK_URL = "https://github.com/ml-monorepo/ml-monorepo/blob/main/infra/runbooks/{}.md"


def _rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def _run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    assert RULE_TESTS
    _run(need("promtool"), "test", "rules", *map(str, RULE_TESTS))


def test_every_alert_is_unit_tested_firing_and_not_firing():
    firing, silent = set(), set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    alerts = set(_alerts())
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - silent == set(), "alerts never tested staying silent"
    assert (firing | silent) - alerts == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_summary_a_description_and_a_runbook_in_the_repository():
    for name, rule in _alerts().items():
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert annotations["runbook_url"] == RUNBOOK_URL.format(name)
        runbook = ROOT / "infra/runbooks" / f"{name}.md"
        assert runbook.read_text().startswith(f"# {name}\n"), runbook
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
    runbooks = {p.stem for p in (ROOT / "infra/runbooks").glob("*.md")}
    assert runbooks == set(_alerts()), "a runbook for every alert, none for a removed one"


def test_slo_rules_count_only_v1_traffic():
    """Health checks and scrapes succeed while the API fails: they must not dilute the SLIs."""
    slis = [r for r in _rules() if r.get("record", "").startswith("job:slo_")]
    windows = {re.search(r"rate(\w+)$", r["record"]).group(1) for r in slis}
    assert windows == {"5m", "30m", "1h", "6h"}
    for rule in slis:
        selectors = re.findall(r"\{([^}]*)\}", rule["expr"])
        assert selectors and all('route=~"/v1/.*"' in s for s in selectors), rule["record"]
    used = " ".join(rule["expr"] for rule in _alerts().values())
    assert {r["record"] for r in slis} <= set(re.findall(r"job:slo_[\w:]+", used))


def test_prometheus_config_loads_the_rules_from_the_repository():
    # rule_files is relative to prometheus.yml: the same file works here and mounted in compose
    _run(need("promtool"), "check", "config", str(PROMETHEUS / "prometheus.yml"))
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["pushgateway"]["honor_labels"] is True, "pushed job labels (drift-<model>) kept"


def test_alertmanager_config_is_valid_and_routes_every_severity():
    amtool = need("amtool")
    config = str(ROOT / "infra/alertmanager/alertmanager.yml")
    _run(amtool, "check-config", config)
    for severity in ("page", "ticket"):
        result = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config}", f"severity={severity}"],
            capture_output=True,
            text=True,
        )
        assert result.stdout.strip() == "oncall", result.stdout + result.stderr


def test_compose_runs_alertmanager_and_pushgateway_with_the_repository_files():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounts = " ".join(compose["prometheus"]["volumes"])
    assert "infra/prometheus/alerts.yml:/etc/prometheus/alerts.yml" in mounts
    assert "infra/alertmanager/alertmanager.yml" in " ".join(compose["alertmanager"]["volumes"])
    assert "pushgateway" in compose
