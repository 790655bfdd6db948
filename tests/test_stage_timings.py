"""scripts/stage_timings.py, which `make demo` runs `dvc repro` through: a time for each stage from
dvc's own lines (run, unchanged, restored from the run cache, failed), the total, the JSON, and
the command's exit status passed on unchanged."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "stage_timings.py"

# dvc 3.x output of a repro where stages are unchanged, run and restored from the run cache,
# with the stages' own output and dvc's lock-file and git lines in between
REPRO = """\
'data/image_classifier/raw.dvc' didn't change, skipping
Stage 'ic_prepare' didn't change, skipping
Running stage 'ic_train@resnet':
> image-classifier train --model resnet
epoch 1/2 loss 0.41
epoch 2/2 loss 0.17
Updating lock file 'dvc.lock'

Stage 'ic_export@resnet' is cached - skipping run, checking out outputs
Updating lock file 'dvc.lock'

Running stage 'ic_evaluate':
> image-classifier evaluate --model resnet
wrote reports/image_classifier/resnet/metrics.json
Updating lock file 'dvc.lock'

To track the changes with git, run:

\tgit add dvc.lock
Use `dvc push` to send your updates to remote storage.
"""


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def stage_timings(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import stage_timings

    return stage_timings


def follow(module, text: str, exit_status: int, seconds_per_line: float = 1.0):
    """Feeds `text` a line a second (by the fake clock); returns the clock and what it printed
    with the lines, as the terminal shows them."""
    clock = Clock()
    timer = module.StageClock(now=clock)
    shown = []
    for line in text.splitlines(keepends=True):
        shown += timer.feed(line)
        shown.append(line.rstrip("\n"))
        clock.t += seconds_per_line
    shown += timer.finish(exit_status)
    return timer, shown


def test_each_stage_is_timed_to_the_next_stage_line(stage_timings):
    timer, shown = follow(stage_timings, REPRO, exit_status=0)
    assert [(s.name, s.outcome, s.seconds) for s in timer.stages] == [
        ("data/image_classifier/raw.dvc", "unchanged", 1.0),
        ("ic_prepare", "unchanged", 1.0),
        ("ic_train@resnet", "ran", 6.0),
        ("ic_export@resnet", "run cache", 3.0),
        ("ic_evaluate", "ran", 9.0),
    ]
    assert timer.total_s == 20.0 and timer.exit_status == 0
    # each stage's line comes right before the next stage's own line, the total at the end
    at = shown.index("Running stage 'ic_train@resnet':")
    assert shown[at - 1] == "== stage ic_prepare: 1 s (unchanged)"
    at = shown.index("Stage 'ic_export@resnet' is cached - skipping run, checking out outputs")
    assert shown[at - 1] == "== stage ic_train@resnet: 6 s"
    assert shown[-2:] == [
        "== stage ic_evaluate: 9 s",
        "== dvc repro: 20 s (2 ran, 2 unchanged, 1 run cache)",
    ]
    # every line of the command is shown, in order, and only the progress lines are added
    assert [line for line in shown if not line.startswith("== ")] == REPRO.splitlines()


def test_a_failing_stage_is_named_and_the_stages_before_it_keep_their_outcome(stage_timings):
    failing = (
        "Stage 'ic_prepare' didn't change, skipping\n"
        "Running stage 'ic_train@resnet':\n"
        "> image-classifier train --model resnet\n"
        "epoch 1/2 loss 0.41\n"
    )
    timer, shown = follow(stage_timings, failing, exit_status=1, seconds_per_line=2.0)
    assert [(s.name, s.outcome, s.seconds) for s in timer.stages] == [
        ("ic_prepare", "unchanged", 2.0),
        ("ic_train@resnet", "failed", 6.0),
    ]
    assert shown[-2:] == [
        "== stage ic_train@resnet: 6 s (FAILED)",
        "== dvc repro FAILED in stage ic_train@resnet (exit 1) after 8 s (1 unchanged, 1 failed)",
    ]
    report = timer.report(["dvc", "repro"], "2025-01-01T00:00:00+00:00")
    assert report["exit_status"] == 1 and report["stages"][-1]["outcome"] == "failed"


def test_a_failure_before_any_stage_runs_blames_no_stage(stage_timings):
    timer, shown = follow(stage_timings, "Stage 'ic_prepare' didn't change, skipping\n", 255)
    assert [(s.name, s.outcome) for s in timer.stages] == [("ic_prepare", "unchanged")]
    assert shown[-1] == "== dvc repro FAILED (exit 255) after 1 s (1 unchanged)"


def test_no_stage_lines_at_all(stage_timings):
    timer, shown = follow(stage_timings, "Data and pipelines are up to date.\n", 0)
    assert timer.stages == []
    assert shown[-1] == "== dvc repro: 1 s (no stages)"


def run_script(tmp_path: Path, *command: str) -> subprocess.CompletedProcess:
    out = tmp_path / "timings.json"
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_s_exit_status_and_output_pass_through(tmp_path):
    code = "print(\"Running stage 'a':\"); print('a writes this'); raise SystemExit(3)"
    done = run_script(tmp_path, sys.executable, "-c", code)
    assert done.returncode == 3, done.stderr
    shown = done.stdout.splitlines()
    assert shown[:3] == ["Running stage 'a':", "a writes this", "== stage a: 0 s (FAILED)"]
    assert shown[3].startswith("== dvc repro FAILED in stage a (exit 3) after ")
    assert shown[4] == f"== stage timings in {tmp_path / 'timings.json'}"
    report = json.loads((tmp_path / "timings.json").read_text())
    assert report["exit_status"] == 3
    assert report["command"] == [sys.executable, "-c", code]
    assert [(s["name"], s["outcome"]) for s in report["stages"]] == [("a", "failed")]


def test_a_successful_command_exits_0_and_a_missing_one_127(tmp_path):
    done = run_script(tmp_path, sys.executable, "-c", "print(\"Running stage 'a':\")")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "timings.json").read_text())["stages"][0]["outcome"] == "ran"
    assert run_script(tmp_path, str(tmp_path / "no-such-command")).returncode == 127


def test_set_e_in_a_script_stops_on_the_failing_repro(tmp_path):
    """demo.sh runs under `set -euo pipefail`: a failing repro ends it with that status."""
    script = (
        f"set -euo pipefail\n{sys.executable} {SCRIPT} -- {sys.executable} -c 'exit(5)'\necho on"
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 5 and "on" not in done.stdout.split()
