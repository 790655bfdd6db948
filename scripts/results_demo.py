"""The README's `make demo` timing, from reports/demo_timings.json: the `.run/demo_timings.json`
that `make demo` (scripts/stage_timings.py) wrote on a fresh clone, copied here by hand after
such a run; it says how many stages ran and how many dvc found unchanged."""

import json
from collections import Counter
from pathlib import Path

DEMO = Path("reports/demo_timings.json")
PROJECTS = {
    "ic_": "image classifier",
    "ss_": "semantic search",
    "llm_": "LLM chat",
    "rag_": "RAG chatbot",
}


# scripts/stage_timings.py's outcomes, in the words the README uses
OUTCOMES = {
    "ran": "stages ran",
    "unchanged": "found unchanged",
    "run cache": "restored from the run cache",
    "failed": "failed",
}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def demo_timings(path: Path = DEMO, longest: int = 8) -> str:
    r = json.loads(path.read_text())
    stages = r["stages"]
    ran = [s for s in stages if s["outcome"] == "ran"]
    by_project = {
        name: sum(s["seconds"] for s in stages if s["name"].startswith(prefix))
        for prefix, name in PROJECTS.items()
    }
    top = sorted(ran, key=lambda s: -s["seconds"])[:longest]
    # A stage whose inputs match dvc.lock is skipped even on a fresh clone (a check with no
    # outputs of its own): the counts say how much of the pipeline this run really ran.
    counts = Counter(s["outcome"] for s in stages)
    scope = ", ".join(
        f"{counts[o]} {label}" for o, label in OUTCOMES.items() if counts[o] or o == "ran"
    )
    status = "" if r["exit_status"] == 0 else f", **exit status {r['exit_status']}**"
    return "\n".join(
        [
            f"`make demo`'s pipeline on a fresh clone, 2 cores (`{DEMO}`, started "
            f"{r['started_at'][:10]}): `dvc repro` **{_minutes(r['total_s'])}** "
            f"({r['total_s']:.0f} s, {scope}{status}); by project: "
            + ", ".join(f"{name} {_minutes(s)}" for name, s in by_project.items())
            + ". Longest stages: "
            + ", ".join(f"`{s['name']}` {s['seconds']:.0f} s" for s in top)
            + "."
        ]
    )
