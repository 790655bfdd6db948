"""Champion vs challenger on live traffic, from the shadow's inference-log records.

Each challenger record (role "challenger", written by `mlstack.serve.shadow`) holds both models'
answers to one item and both latencies, so every figure here compares the two on the same items.
"""

from pathlib import Path
from typing import Any

import numpy as np


def _percentiles(values) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    a = a[~np.isnan(a)]
    if a.size == 0:
        return {"p50": float("nan"), "p99": float("nan")}
    return {f"p{p}": round(float(np.percentile(a, p)), 3) for p in (50, 99)}


def _pair(frame) -> dict[str, Any]:
    labels = frame["label"].astype(str)
    champion_labels = frame["champion_label"].astype(str)
    agree = labels == champion_labels
    confusion: dict[str, dict[str, int]] = {}
    for (theirs, mine), n in frame.groupby([champion_labels, labels]).size().items():
        confusion.setdefault(theirs, {})[mine] = int(n)
    per_class = {
        label: {"items": int(group.size), "agreement": round(float(group.mean()), 4)}
        for label, group in agree.groupby(champion_labels)
    }
    result: dict[str, Any] = {
        "items": len(frame),
        "requests": int(frame["request_id"].nunique()),
        "agreement": round(float(agree.mean()), 4),
        "per_class": dict(sorted(per_class.items())),
        "confusion": {k: dict(sorted(v.items())) for k, v in sorted(confusion.items())},
        "latency_ms": {
            # One latency per request (all its items share it), so per-request percentiles.
            "champion": _percentiles(frame.drop_duplicates(["request_id"])["champion_latency_ms"]),
            "challenger": _percentiles(frame.drop_duplicates(["request_id"])["latency_ms"]),
            "challenger_queue": _percentiles(frame.drop_duplicates(["request_id"])["queue_ms"]),
        },
    }
    if {"confidence", "champion_confidence"} <= set(frame.columns):
        mine, theirs = frame["confidence"].astype(float), frame["champion_confidence"].astype(float)
        result["confidence"] = {
            "champion_mean": round(float(theirs.mean()), 4),
            "challenger_mean": round(float(mine.mean()), 4),
            "shift": round(float((mine - theirs).mean()), 4),
            "shift_when_disagreeing": round(float((mine - theirs)[~agree].mean()), 4)
            if (~agree).any()
            else None,
        }
    return result


def shadow_report(frame) -> dict[str, Any]:
    """Per (champion, challenger) pair: agreement overall and per champion label, the confusion
    between the two (champion label -> challenger label -> items), latency p50/p99 of both on the
    same requests, and the mean confidence shift. `frame` is `read_inference_log(...)`."""
    if frame.empty or "role" not in frame.columns:
        return {"pairs": []}
    shadowed = frame[frame["role"] == "challenger"]
    # Items of one request share its latencies; a record without an id counts as its own request.
    ids = shadowed["request_id"] if "request_id" in shadowed.columns else None
    fallback = shadowed.index.to_series().astype(str)
    shadowed = shadowed.assign(request_id=fallback if ids is None else ids.fillna(fallback))
    champions = frame[frame["role"] == "champion"]
    pairs = []
    for (champion, challenger), group in shadowed.groupby(["champion", "model"]):
        served = champions[champions["model"] == champion]
        pairs.append(
            {
                "champion": champion,
                "challenger": challenger,
                "champion_version": str(group["champion_version"].iloc[-1]),
                "challenger_version": str(group["version"].iloc[-1]),
                "champion_items_logged": len(served),
                # The share of the champion's traffic compared (sampling and drops), when both
                # roles are logged at the same sample rate.
                "coverage": round(len(group) / len(served), 4) if len(served) else None,
                **_pair(group),
            }
        )
    return {"pairs": pairs}


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table, one block per pair."""
    lines = []
    for p in report["pairs"]:
        lat, conf = p["latency_ms"], p.get("confidence", {})
        lines += [
            f"{p['champion']} v{p['champion_version']} (champion) vs "
            f"{p['challenger']} v{p['challenger_version']} (challenger): {p['items']} items, "
            f"{p['requests']} requests",
            f"  agreement {p['agreement']:.2%}; coverage {p['coverage'] or float('nan'):.2%} of "
            f"the champion's logged items",
            f"  {'':<12}{'p50 ms':>10}{'p99 ms':>10}{'mean conf':>11}",
            f"  {'champion':<12}{lat['champion']['p50']:>10.2f}{lat['champion']['p99']:>10.2f}"
            f"{conf.get('champion_mean', float('nan')):>11.4f}",
            f"  {'challenger':<12}{lat['challenger']['p50']:>10.2f}"
            f"{lat['challenger']['p99']:>10.2f}{conf.get('challenger_mean', float('nan')):>11.4f}",
            "  (champion: with its batching queue; challenger: model time, after a p50 wait of "
            f"{lat['challenger_queue']['p50']:.2f} ms in its own queue)",
            f"  {'label':<8}{'items':>7}{'agree':>8}  challenger says (items)",
        ]
        for label, stats in p["per_class"].items():
            says = ", ".join(f"{k}:{v}" for k, v in p["confusion"].get(label, {}).items())
            lines.append(f"  {label:<8}{stats['items']:>7}{stats['agreement']:>8.2%}  {says}")
    return "\n".join(lines) if lines else "no shadow records"


def write_report(report: dict[str, Any], out: Path) -> None:
    import json

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
