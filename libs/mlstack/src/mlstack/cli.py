"""`mlstack` command line: jobs that every project shares (the drift check, the shadow report)."""

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Shared ML stack jobs.", no_args_is_help=True, add_completion=False)


@app.callback()
def main() -> None:
    """Shared ML stack jobs."""


def _read_table(path: Path):
    import pandas as pd

    readers = {".parquet": pd.read_parquet, ".csv": pd.read_csv, ".jsonl": pd.read_json}
    if path.suffix not in readers:
        raise typer.BadParameter(f"{path}: use .parquet, .csv or .jsonl", param_hint="--reference")
    return readers[path.suffix](path, **({"lines": True} if path.suffix == ".jsonl" else {}))


@app.command()
def drift(
    reference: Annotated[
        Path, typer.Option(exists=True, help="Reference table (.parquet/.csv/.jsonl).")
    ],
    log_dir: Annotated[
        Path, typer.Option(exists=True, file_okay=False, help="Inference log folder.")
    ],
    out: Annotated[Path, typer.Option(help="Where the HTML/JSON reports go.")] = Path(
        "reports/drift"
    ),
    model: Annotated[str, typer.Option(help="Model label of the exported gauge.")] = "model",
    columns: Annotated[
        str | None, typer.Option(help="Comma-separated columns (default: shared).")
    ] = None,
    threshold: Annotated[
        float, typer.Option(min=0, max=1, help="Fail past this drift share.")
    ] = 0.5,
    since_hours: Annotated[float | None, typer.Option(help="Only log records this recent.")] = None,
    pushgateway: Annotated[str | None, typer.Option(help="Prometheus Pushgateway address.")] = None,
) -> None:
    """Compare recent inference logs with a reference set; exit 1 past the drift threshold."""
    import time

    from mlstack.monitor.drift import drift_report, export_gauge
    from mlstack.monitor.inference_log import read_inference_log

    since = time.time() - since_hours * 3600 if since_hours else None
    current = read_inference_log(log_dir, since=since)
    if current.empty:
        typer.echo(f"no inference records in {log_dir}", err=True)
        raise typer.Exit(2)
    result = drift_report(
        _read_table(reference),
        current,
        out,
        columns=columns.split(",") if columns else None,
        threshold=threshold,
    )
    export_gauge(result, model, out / "drift.prom", pushgateway)
    typer.echo(
        f"drift share {result.drift_share:.3f} (threshold {threshold}); drifted: "
        f"{', '.join(result.drifted_columns) or 'none'}; report: {out / 'drift.html'}"
    )
    if result.drifted:
        raise typer.Exit(1)


@app.command("shadow-report")
def shadow_report(
    log_dir: Annotated[
        Path, typer.Option(exists=True, file_okay=False, help="Inference log folder.")
    ],
    out: Annotated[Path, typer.Option(help="Where the JSON report goes.")] = Path(
        "reports/shadow_report.json"
    ),
    since_hours: Annotated[float | None, typer.Option(help="Only log records this recent.")] = None,
) -> None:
    """Compare the champion with its shadow challenger on the logged live traffic: agreement,
    per-class confusion between the two, latency p50/p99, confidence shift. Exit 2 without
    shadow records."""
    import time

    from mlstack.monitor.inference_log import read_inference_log
    from mlstack.monitor.shadow_report import format_table, shadow_report, write_report

    since = time.time() - since_hours * 3600 if since_hours else None
    report = shadow_report(read_inference_log(log_dir, since=since, include_shadow=True))
    if not report["pairs"]:
        typer.echo(f"no shadow records in {log_dir}", err=True)
        raise typer.Exit(2)
    write_report(report, out)
    typer.echo(format_table(report))
    typer.echo(f"report: {out}")


if __name__ == "__main__":
    app()
