"""Writes infra/grafana/dashboards/services.json, the "ML services" dashboard Grafana provisions.

The JSON is generated so that the panels stay short to read and review: one entry per panel in
grafana_panels.py, laid out on the grid here. Every query filters on the `service` variable (the
Prometheus `job`). tests/test_grafana.py checks that the file is up to date and that each query
names metrics the services really export.

    python scripts/grafana_dashboard.py --write
"""

import argparse
import json
from pathlib import Path

from grafana_panels import ROWS

OUT = Path(__file__).resolve().parents[1] / "infra/grafana/dashboards/services.json"

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SERVICE_VARIABLE = {
    "name": "service",
    "label": "Service",
    "type": "query",
    "datasource": DATASOURCE,
    # every scraped service has `up`; the Pushgateway's pushed jobs have no `up` of their own
    "query": {"query": "label_values(up, job)", "refId": "service"},
    "definition": "label_values(up, job)",
    "refresh": 2,
    "includeAll": True,
    "multi": True,
    "allValue": ".*",
    "current": {"text": "All", "value": "$__all"},
    "sort": 1,
}


def dashboard() -> dict:
    panels, y, next_id = [], 0, 1
    for row, charts in ROWS:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id, y = next_id + 1, y + 1
        for i, (title, unit, queries) in enumerate(charts):
            panels.append(
                {
                    "id": next_id,
                    "type": "timeseries",
                    "title": title,
                    "datasource": DATASOURCE,
                    "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": y + 8 * (i // 2)},
                    "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                    "targets": [
                        {"refId": chr(ord("A") + k), "datasource": DATASOURCE, **target}
                        for k, target in enumerate(queries)
                    ],
                }
            )
            next_id += 1
        y += 8 * ((len(charts) + 1) // 2)
    return {
        "uid": "ml-services",
        "title": "ML services",
        "tags": ["mlstack"],
        "schemaVersion": 39,
        "version": 2,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [SERVICE_VARIABLE]},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {OUT.name} (else print)")
    if parser.parse_args().write:
        OUT.write_text(render())
    else:
        print(render(), end="")
