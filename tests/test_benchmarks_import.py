"""Every benchmark script imports: they share modules (llm_engines.py, llm_http.py, ...), and a
moved name broke one without any test noticing, since none of them runs in the suite."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_every_benchmark_module_imports():
    modules = sorted(p.stem for p in BENCHMARKS.glob("*.py"))
    assert "bench_llm_chat" in modules
    # one fresh interpreter, run from benchmarks/ as the scripts are (they import each other)
    code = "; ".join(f"import {m}" for m in modules)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=BENCHMARKS, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
