"""Alerts that fire for real: Prometheus loads infra/prometheus/alerts.yml, scrapes a dead target
and a Pushgateway holding a drift report pushed by `mlstack.monitor.drift.export_gauge`, and the
real Alertmanager (infra/alertmanager/alertmanager.yml) posts both alerts to a webhook here."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

from mlstack.monitor.drift import DriftResult, export_gauge
from mlstack.testing import free_port

from .conftest import need
from .test_alert_rules import PROMETHEUS, ROOT
from .test_serving_runtime import started


def _webhook() -> tuple[ThreadingHTTPServer, list[dict]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def _firing(received: list[dict]) -> dict[str, dict]:
    return {
        alert["labels"]["alertname"]: alert
        for message in received
        for alert in message["alerts"]
        if alert["status"] == "firing"
    }


def test_prometheus_fires_target_down_and_drift_and_alertmanager_delivers_them(tmp_path):
    prometheus, alertmanager = need("prometheus"), need("prometheus-alertmanager")
    pushgateway = need("prometheus-pushgateway")
    am_port, pg_port, prom_port, dead_port = (free_port() for _ in range(4))
    server, received = _webhook()

    # The repository's routing, only the receiver's URL and the waits changed
    am_config = yaml.safe_load((ROOT / "infra/alertmanager/alertmanager.yml").read_text())
    am_config["receivers"][0]["webhook_configs"][0]["url"] = (
        f"http://127.0.0.1:{server.server_port}/alerts"
    )
    am_config["route"].update(group_wait="1s", group_interval="1s")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
    # The repository's rules, with TargetDown's `for: 2m` cut so the test takes seconds
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "TargetDown":
                rule["for"] = "0s"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    prom_config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
        },
        "scrape_configs": [
            {"job_name": "llm-chat", "static_configs": [{"targets": [f"127.0.0.1:{dead_port}"]}]},
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{pg_port}"]}],
            },
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom_config))

    am_cmd = [
        alertmanager,
        f"--config.file={tmp_path}/alertmanager.yml",
        f"--storage.path={tmp_path}/am",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",  # no gossip port: a single instance
    ]
    pg_cmd = [pushgateway, f"--web.listen-address=127.0.0.1:{pg_port}"]
    prom_cmd = [
        prometheus,
        f"--config.file={tmp_path}/prometheus.yml",
        f"--storage.tsdb.path={tmp_path}/tsdb",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    try:
        with (
            started(am_cmd, {}, f"http://127.0.0.1:{am_port}/-/ready"),
            started(pg_cmd, {}, f"http://127.0.0.1:{pg_port}/-/ready"),
        ):
            drift = DriftResult(0.8, ["a", "b"], ["a", "b", "c"], 100, 50, threshold=0.5)
            export_gauge(drift, "digits", tmp_path / "drift.prom", f"127.0.0.1:{pg_port}")
            with started(prom_cmd, {}, f"http://127.0.0.1:{prom_port}/-/ready"):
                deadline = time.monotonic() + 45
                while time.monotonic() < deadline:
                    if {"TargetDown", "DataDrift"} <= set(_firing(received)):
                        break
                    time.sleep(0.5)
    finally:
        server.shutdown()

    firing = _firing(received)
    assert {"TargetDown", "DataDrift"} <= set(firing), received
    down, drifted = firing["TargetDown"], firing["DataDrift"]
    assert down["labels"]["job"] == "llm-chat"
    assert down["labels"]["instance"] == f"127.0.0.1:{dead_port}"
    assert down["labels"]["severity"] == "page"
    assert down["annotations"]["summary"] == f"llm-chat at 127.0.0.1:{dead_port} is down"
    assert down["annotations"]["runbook_url"].endswith("/infra/runbooks/TargetDown.md")
    assert drifted["labels"] == {"alertname": "DataDrift", "model": "digits", "severity": "ticket"}
    assert drifted["annotations"]["summary"].startswith("Input drift on digits")
    assert drifted["annotations"]["description"]
