"""`rag-chatbot`: the pipeline stages (DVC runs them, see dvc.yaml), ingesting files from the
shell, one question from the shell, and `serve`. Parameters come from params.yaml, section
`rag_chatbot`."""

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from mlstack.serve_command import add_serve_command

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)


def _params() -> dict:
    from mlstack.params import load_section

    return load_section("rag_chatbot")


def _show(result) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


@app.callback()
def _logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("rag_chatbot").setLevel(logging.INFO)


@app.command()
def index() -> None:
    """Chunk and embed the packaged Wikipedia summaries, one index per chunk size."""
    from rag_chatbot.pipeline import index_stage

    _show(index_stage(_params()))


@app.command()
def questions() -> None:
    """The evaluation questions: tune and test splits, and unanswerable ones."""
    from rag_chatbot.pipeline import questions_stage

    _show(questions_stage(_params()))


@app.command()
def evaluate() -> None:
    """Retrieval, faithfulness, citations and no-answer accuracy per configuration (MLflow)."""
    from rag_chatbot.pipeline import evaluate_stage

    report = evaluate_stage(_params())
    _show({k: v for k, v in report.items() if k not in ("threshold", "examples")})


@app.command()
def natural() -> None:
    """Recall, "I don't know" and refusal rates and latency on the natural questions (tune and
    test), for the service's retrieval and each variant in params.yaml; picks the floor on tune."""
    from rag_chatbot.natural_eval import natural_stage

    report = natural_stage(_params())
    _show(
        {k: v for k, v in report.items() if k != "service"}
        | {"service": {k: report["service"][k] for k in ("tune", "test")}}
    )


@app.command()
def register() -> None:
    """Register the evaluated configuration (its serving card) in MLflow (lineage tags) and run
    the promotion gate on the evaluation's answer metric; the decision goes to
    models/rag_chatbot/."""
    from rag_chatbot.register import register as run

    _show(run(_params())["decision"])


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
