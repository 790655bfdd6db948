"""scripts/plots.py renders the README's figures from the committed reports, and skips (not
fails) a figure whose input is missing. scripts/screenshots.py needs running services and a
browser, so `make screenshots` runs it by hand; here only its --help is checked."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "plots.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Figures whose inputs are committed JSON: these must render on any checkout.
FROM_COMMITTED = ("classifier_per_class", "search_modes", "llm_streams", "rag_natural")


def load_plots(monkeypatch):
    # scripts/ first on the path, as `python scripts/plots.py` has it: plots.py imports its
    # figure modules (plots_common.py, plots_classifier.py, ...) from beside it
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("plots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    assert 10_000 < len(data) < 300_000, (path, len(data))  # drawn, and small enough to commit


def test_every_figure_renders_or_says_why_it_is_skipped(tmp_path, monkeypatch):
    results = load_plots(monkeypatch).render(ROOT / "reports", tmp_path)
    for name in FROM_COMMITTED:
        assert results[name] == "ok", (name, results[name])
    for name, status in results.items():
        if status == "ok":
            assert_png(tmp_path / f"{name}.png")
        else:  # only a missing input may skip a figure, and the reason names the file
            assert status.startswith("skipped: ") and "reports/" in status, (name, status)


def test_missing_inputs_skip_with_a_reason(tmp_path, monkeypatch):
    results = load_plots(monkeypatch).render(tmp_path / "no-reports", tmp_path / "out")
    assert all(status.startswith("skipped: ") for status in results.values()), results
    assert not list((tmp_path / "out").glob("*.png"))


def test_index_benchmark_figure(tmp_path, monkeypatch):
    """The vector-index benchmark (`make bench`) may be absent here: render it from a copy of
    the committed reports with a small benchmark file added."""
    reports = tmp_path / "reports"
    shutil.copytree(ROOT / "reports" / "semantic_search", reports / "semantic_search")
    rows = [
        {"vectors": n, "index": index, "recall@10": recall, "p50_ms": p50, "p99_ms": 2 * p50}
        for n in (10_033, 1_000_000)
        for index, recall, p50 in (("exact (numpy)", 1.0, 0.7), ("faiss HNSW", 0.99, 0.2))
    ]
    (reports / "semantic_search" / "benchmark.json").write_text(json.dumps({"indexes": rows}))
    results = load_plots(monkeypatch).render(reports, tmp_path / "out", only=["search_index"])
    assert results == {"search_index": "ok"}
    assert_png(tmp_path / "out" / "search_index.png")


@pytest.mark.parametrize("script", ["plots.py", "screenshots.py"])
def test_cli_help_imports_no_heavy_module(script):
    """`--help` must stay instant: matplotlib and Playwright load only when there is work."""
    code = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(SCRIPT.parent)!r})\n"  # as `python scripts/<script>` has it
        f"sys.argv = [{script!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_path({str(SCRIPT.parent / script)!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted({'matplotlib', 'playwright', 'torch'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage:" in out.stdout
    assert out.stdout.strip().endswith("[]"), out.stdout


@pytest.mark.parametrize("name", FROM_COMMITTED)
def test_committed_readme_figures_exist(name):
    """README.md shows docs/img/<name>.png: `make plots` wrote and committed it."""
    path = ROOT / "docs" / "img" / f"{name}.png"
    assert_png(path)
    assert f"docs/img/{name}.png" in (ROOT / "README.md").read_text()
