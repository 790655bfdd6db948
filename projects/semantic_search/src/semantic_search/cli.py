"""`semantic-search`: the pipeline stages (DVC runs them, see dvc.yaml), ingestion, a query from
the shell, and `serve`. Parameters come from params.yaml, section `semantic_search`."""

import json
from pathlib import Path
from typing import Annotated

import typer

from mlstack.params import load_section
from mlstack.project_cli import echo_json, project_app
from mlstack.serve_command import add_serve_command

app = project_app(__doc__, info_loggers=["semantic_search", "mlstack"])
# What the service serves (and `ingest` adds to), seeded from the champion's index with the
# champion's encoder (ss_register installs both; the service's defaults).
SERVICE_INDEX = "data/semantic_search/service-index"
CORPUS_INDEX = Path("models/semantic_search/champion/index")
CHAMPION_ENCODER = Path("models/semantic_search/champion/encoder")


def _open_service_index(uri: str, dim: int):
    """The store at `uri`, seeded from the champion's index first if it is a new local folder
    (as the service does on start), so documents ingested here sit beside the corpus."""
    from semantic_search.stores import open_store
    from semantic_search.stores.base import is_milvus_uri
    from semantic_search.stores.seed import seed_index

    if not is_milvus_uri(uri):
        seed_index(Path(uri), CORPUS_INDEX)
    return open_store(uri, dim)


@app.command()
def prepare() -> None:
    """Corpus, held-out queries, calibration and parity sentences from the packaged Wikipedia."""
    from semantic_search.pipeline import prepare_stage

    report = prepare_stage(load_section("semantic_search"))
    echo_json({k: v for k, v in report.items() if k != "topics"})


@app.command()
def validate() -> None:
    """Check the prepared corpus and splits (schema, lengths, ids, topics, leakage); fails on any
    problem."""
    from mlstack.validate import ValidationError
    from semantic_search.pipeline import DATA, REPORTS
    from semantic_search.validate import validate as run

    try:
        report = run(
            DATA, REPORTS / "validation.json", load_section("semantic_search")["validation"]
        )
    except ValidationError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    echo_json({k: report[k] for k in ("passed", "documents", "queries", "topics")})


@app.command()
def export() -> None:
    """The sentence-transformers encoder as ONNX (pooling in the graph, attention fused)."""
    from semantic_search.pipeline import export_stage

    echo_json(export_stage(load_section("semantic_search")))


@app.command()
def quantize() -> None:
    """INT8 with measured mixed precision; parity against sentence-transformers."""
    from semantic_search.pipeline import quantize_stage

    echo_json(quantize_stage(load_section("semantic_search")))


@app.command("export-reranker")
def export_reranker(
    source: Annotated[
        str, typer.Argument(help="a cross-encoder folder or Hugging Face id (online)")
    ] = "cross-encoder/ms-marco-MiniLM-L-6-v2",
    out: Annotated[Path, typer.Option(help="then serve with SEMANTIC_SEARCH_RERANKER_DIR")] = Path(
        "models/semantic_search/reranker"
    ),
) -> None:
    """A cross-encoder reranker as ONNX (for `rerank: true` searches)."""
    from semantic_search.export import build_cross_encoder

    echo_json(json.loads((build_cross_encoder(source, out) / "encoder.json").read_text()))


@app.command()
def embed(variant: Annotated[str, typer.Option(help="fp32 | int8")] = "int8") -> None:
    """Embed the corpus with one encoder variant (a .npy file)."""
    from semantic_search.pipeline import embed_stage

    typer.echo(embed_stage(variant, load_section("semantic_search")))


@app.command()
def index() -> None:
    """Build the LanceDB index (vectors, BM25, HNSW) from the corpus and its INT8 embeddings."""
    from semantic_search.pipeline import index_stage

    echo_json(index_stage(load_section("semantic_search")))


@app.command()
def evaluate() -> None:
    """Known-item retrieval metrics per system and search latency; logged to MLflow."""
    from semantic_search.pipeline import evaluate_stage

    report = evaluate_stage(load_section("semantic_search"))
    echo_json({k: report[k] for k in ("systems", "latency_ms", "int8_vs_fp32_ndcg_relative")})


@app.command()
def natural() -> None:
    """Recall@1/5/10 and latency of each search mode on the natural questions (tune and test)."""
    from semantic_search.natural_eval import natural_stage

    report = natural_stage(load_section("semantic_search"))
    echo_json({k: report[k] for k in ("modes", "variants")})


@app.command()
def behaviour() -> None:
    """Behavioural tests of the hybrid ranking (query casing/punctuation, exact titles, recall
    floor); fails below a bound."""
    from mlstack.validate import ValidationError
    from semantic_search.behaviour import behaviour as run
    from semantic_search.pipeline import DATA, REPORTS

    try:
        report = run(DATA, REPORTS / "behaviour.json", load_section("semantic_search"))
    except ValidationError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    echo_json({k: report[k] for k in ("passed", "queries", "k")})


@app.command()
def register() -> None:
    """Register the INT8 encoder with its index and serving card in MLflow (lineage tags) and run
    the promotion gate on ss_evaluate's metric; the decision goes to models/semantic_search/."""
    from semantic_search.register import register as run

    echo_json(run(load_section("semantic_search"))["decision"])


@app.command()
def ingest(
    path: Annotated[
        Path, typer.Argument(help=".jsonl, .csv, or a folder of .md/.txt files", exists=True)
    ],
    index_uri: Annotated[
        str, typer.Option("--index", help="LanceDB folder or Milvus URI")
    ] = SERVICE_INDEX,
    encoder_dir: Annotated[Path, typer.Option("--encoder")] = CHAMPION_ENCODER,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 256,
) -> None:
    """Upsert documents; each batch is acknowledged once durable (an interruption keeps those)."""
    from semantic_search.encoder import Encoder
    from semantic_search.indexing import index_documents
    from semantic_search.ingest import IngestError, read_documents

    encoder = Encoder(encoder_dir)
    store = _open_service_index(index_uri, encoder.dim)
    try:
        total = index_documents(
            store,
            encoder,
            read_documents(path),
            batch_size=batch_size,
            on_batch=lambda n: typer.echo(f"acknowledged {n}"),
        )
    except IngestError as e:
        raise typer.BadParameter(str(e)) from None
    typer.echo(f"done: {total} documents, index holds {store.count()}")


@app.command()
def search(
    query: str,
    k: Annotated[int, typer.Option(min=1, max=100)] = 5,
    mode: Annotated[str, typer.Option(help="dense | bm25 | hybrid")] = "hybrid",
    topic: Annotated[list[str] | None, typer.Option(help="filter; repeat for several")] = None,
    index_uri: Annotated[str, typer.Option("--index")] = SERVICE_INDEX,
    encoder_dir: Annotated[Path, typer.Option("--encoder")] = CHAMPION_ENCODER,
) -> None:
    """One query from the shell, through the Python API."""
    from semantic_search import Encoder, Filters, Retriever

    encoder = Encoder(encoder_dir)
    retriever = Retriever(encoder, _open_service_index(index_uri, encoder.dim))
    result = retriever.search(
        query, k=k, mode=mode, filters=Filters(topic=topic) if topic else None
    )
    echo_json(
        [
            {"id": h.document.id, "score": round(h.score, 4), "topic": h.document.topic}
            for h in result.hits
        ]
    )


add_serve_command(
    app,
    "semantic_search.service",
    doc="Run the HTTP service (settings from SEMANTIC_SEARCH_* environment variables).",
    blas_threads=1,
)


if __name__ == "__main__":
    app()
