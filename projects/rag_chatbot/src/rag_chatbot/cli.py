"""`rag-chatbot`: the pipeline stages (DVC runs them, see dvc.yaml), ingesting files from the
shell, one question from the shell, and `serve`. Parameters come from params.yaml, section
`rag_chatbot`."""

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from mlstack.params import load_section
from mlstack.project_cli import echo_json, project_app
from mlstack.serve_command import add_serve_command

app = project_app(__doc__, info_loggers=["rag_chatbot"])


@app.command()
def index() -> None:
    """Chunk and embed the packaged Wikipedia summaries, one index per chunk size."""
    from rag_chatbot.pipeline import index_stage

    echo_json(index_stage(load_section("rag_chatbot")))


@app.command()
def questions() -> None:
    """The evaluation questions: tune and test splits, and unanswerable ones."""
    from rag_chatbot.pipeline import questions_stage

    echo_json(questions_stage(load_section("rag_chatbot")))


@app.command()
def evaluate() -> None:
    """Retrieval, faithfulness, citations and no-answer accuracy per configuration (MLflow)."""
    from rag_chatbot.pipeline import evaluate_stage

    report = evaluate_stage(load_section("rag_chatbot"))
    echo_json({k: v for k, v in report.items() if k not in ("threshold", "examples")})


@app.command()
def natural() -> None:
    """Recall, "I don't know" and refusal rates and latency on the natural questions (tune and
    test), for the service's retrieval and each variant in params.yaml; picks the floor on tune."""
    from rag_chatbot.natural_eval import natural_stage

    report = natural_stage(load_section("rag_chatbot"))
    echo_json(
        {k: v for k, v in report.items() if k != "service"}
        | {"service": {k: report["service"][k] for k in ("tune", "test")}}
    )


@app.command()
def register() -> None:
    """Register the evaluated configuration (its serving card) in MLflow (lineage tags) and run
    the promotion gate on the evaluation's answer metric; the decision goes to
    models/rag_chatbot/."""
    from rag_chatbot.register import register as run

    echo_json(run(load_section("rag_chatbot"))["decision"])


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="files to add")],
) -> None:
    """Add or replace PDF, Markdown, HTML or text files (id = file name) in the service's index,
    as an upload with `replace=true` would (settings from RAG_CHATBOT_*; safe while it runs)."""
    from rag_chatbot.extract import ExtractError
    from rag_chatbot.service import Settings, open_documents, serving_settings

    _, docs = open_documents(serving_settings(Settings())[0])  # chunked as the service does
    for f in files:
        data = f.read_bytes()
        try:
            new = docs.prepare(f.name, data, doc_id=f.name, title=None, topic="", media_type=None)
        except ExtractError as e:
            typer.secho(f"{f}: {e.code}: {e}", fg="red", err=True)
            continue
        info, status = docs.put(new, data, title=None, media_type=None, replace=True)
        typer.echo(f"{f}: {status}, {info.chunks} chunks")


@app.command()
def ask(
    question: Annotated[str, typer.Argument()],
    generator_url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL")] = None,
) -> None:
    """Answer one question from the index, as the service would (settings from RAG_CHATBOT_*)."""
    from rag_chatbot.service import Settings, build_rag, serving_settings

    settings = Settings(**({"generator_url": generator_url} if generator_url else {}))
    rag, _ = build_rag(serving_settings(settings)[0])

    async def go():
        async for event in rag.stream([{"role": "user", "content": question}], rag.config):
            if event["type"] == "delta":
                typer.echo(event["text"], nl=False)
            elif event["type"] == "answer":
                typer.echo("\n\n" + event["answer"])
                for c in event["citations"]:
                    page = f", page {c.source.page}" if c.source.page else ""
                    typer.echo(f"[{c.n}] {c.source.title}{page} ({c.source.doc_id})")

    asyncio.run(go())


add_serve_command(
    app,
    "rag_chatbot.service",
    doc="Run the HTTP service (settings from RAG_CHATBOT_* environment variables).",
    blas_threads=1,
)


if __name__ == "__main__":
    app()
