"""Runs `dvc repro` (or any command given after `--`), passes its output through line by line and
adds a progress line with each pipeline stage's time, then the total; writes them all as JSON.

    python scripts/stage_timings.py --out .run/demo_timings.json -- dvc repro

A stage's time runs from dvc's line for it ("Running stage 'NAME':", "Stage 'NAME' didn't change,
skipping", "Stage 'NAME' is cached - skipping run, ...") to the next such line or the command's
end, so it includes dvc's check of the stage that follows. Exits with the command's exit status;
when that is not 0, a stage still running at the end is the one reported as failed.
"""

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

# The outcome each of dvc's stage lines announces (dvc 3.x: dvc/stage/run.py, __init__.py and
# cache.py log them); a data source's skip line has no "Stage " in front.
MARKERS = (
    (re.compile(r"^Running stage '(?P<name>[^']+)':$"), "ran"),
    (re.compile(r"^(?:Stage )?'(?P<name>[^']+)' didn't change, skipping$"), "unchanged"),
    (re.compile(r"^Stage '(?P<name>[^']+)' is cached - skipping run, checking out"), "run cache"),
)
NOTES = {"ran": "", "unchanged": " (unchanged)", "run cache": " (from the run cache)"}


@dataclass
class Stage:
    name: str
    outcome: str  # "ran", "unchanged", "run cache" or "failed"
    seconds: float


class StageClock:
    """Follows a command's output line by line; `feed` and `finish` return the progress lines to
    print (before the line fed, so a stage's time comes right before the next stage's line)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self.now = now
        self.started = now()
        self.stages: list[Stage] = []
        self._open: tuple[str, str, float] | None = None  # name, outcome, when its line came
        self.exit_status: int | None = None
        self.total_s: float | None = None

    def feed(self, line: str) -> list[str]:
        text = line.rstrip("\r\n")
        for pattern, outcome in MARKERS:
            if match := pattern.match(text):
                done = self._close(outcome_if_open=None)
                self._open = (match["name"], outcome, self.now())
                return done
        return []

    def finish(self, exit_status: int) -> list[str]:
        self.exit_status = exit_status
        done = self._close(outcome_if_open="failed" if exit_status else None)
        self.total_s = round(self.now() - self.started, 2)
        counts = {o: sum(s.outcome == o for s in self.stages) for o in (*NOTES, "failed")}
        summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "no stages"
        if not exit_status:
            return [*done, f"== dvc repro: {self.total_s:.0f} s ({summary})"]
        failed = next((f" in stage {s.name}" for s in self.stages if s.outcome == "failed"), "")
        return [
            *done,
            f"== dvc repro FAILED{failed} (exit {exit_status}) after {self.total_s:.0f} s "
            f"({summary})",
        ]

    def _close(self, outcome_if_open: str | None) -> list[str]:
        """Ends the stage whose line came last; `outcome_if_open` replaces the outcome of one
        that was running (a failing command's last stage), not of an unchanged one."""
        if self._open is None:
            return []
        name, outcome, since = self._open
        self._open = None
        if outcome_if_open and outcome in ("ran", "run cache"):
            outcome = outcome_if_open
        stage = Stage(name, outcome, round(self.now() - since, 2))
        self.stages.append(stage)
        note = " (FAILED)" if outcome == "failed" else NOTES[outcome]
        return [f"== stage {name}: {stage.seconds:.0f} s{note}"]

    def report(self, command: list[str], started_at: str) -> dict:
        return {
            "command": command,
            "started_at": started_at,
            "exit_status": self.exit_status,
            "total_s": self.total_s,
            "stages": [asdict(s) for s in self.stages],
        }


def run(command: list[str], out: Path | None) -> int:
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    clock = StageClock()
    # Unbuffered Python stages: their prints reach the pipe (and the terminal) as they happen.
    env = {"PYTHONUNBUFFERED": "1", **os.environ}
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
    except FileNotFoundError as exc:
        print(f"{command[0]}: {exc.strerror}", file=sys.stderr)
        return 127  # as a shell answers a command it cannot find
    # Ctrl-C reaches dvc too (one process group): it stops its stage and exits; meanwhile this
    # keeps passing its output on and then reports its exit status.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode(errors="replace")
        for progress in clock.feed(line):
            print(progress, flush=True)
        sys.stdout.write(line)
        sys.stdout.flush()
    returncode = proc.wait()
    status = returncode if returncode >= 0 else 128 - returncode  # killed by a signal: as a shell
    for progress in clock.finish(status):
        print(progress, flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(clock.report(command, started_at), indent=2) + "\n")
        print(f"== stage timings in {out}", flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="where the timings' JSON goes (else not written)")
    parser.add_argument("command", nargs="+", help="the command after `--`, e.g. dvc repro")
    args = parser.parse_args(argv)
    return run(args.command, args.out)


if __name__ == "__main__":
    sys.exit(main())
