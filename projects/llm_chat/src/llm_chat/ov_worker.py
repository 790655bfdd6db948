"""OpenVINO GenAI's pipeline in a child process, driven in lockstep by OVEngine's thread: the
engine sends one tick (new requests, cancellations), the worker runs them and one `step()`,
and answers each request's new token ids and status.

Why a process: the binding's `step()` holds the GIL for the whole batched forward pass, so in
the server's process its event loop (parsing, tokenizing, writing streams) only ran between
steps: 16 streaming HTTP clients got 0.4x the in-process throughput and seconds to a first
token. Here the engine thread waits on a pipe, GIL released, while the child computes. And a
child that dies (a fault in a CPU kernel) costs its running requests, not the server: the
engine ends them with an error and starts a new one.
"""

import multiprocessing as mp
from multiprocessing.connection import Connection
from typing import Any


def spawn(ov_dir: str, scheduler: dict[str, Any], properties: dict[str, Any]):
    """A started worker process and the engine's end of its pipe, once the model is loaded."""
    context = mp.get_context("spawn")  # never fork a process whose threads hold locks
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_main,
        args=(theirs, ov_dir, scheduler, properties),
        name="openvino-worker",
        daemon=True,
    )
    process.start()
    theirs.close()
    try:
        status, detail = ours.recv()
    except EOFError:
        status, detail = "error", f"the worker died while loading (exit code {process.exitcode})"
    if status != "ready":
        process.join(timeout=5)
        raise RuntimeError(f"OpenVINO could not load {ov_dir}: {detail}")
    return process, ours


def _main(conn: Connection, ov_dir: str, scheduler: dict[str, Any], properties: dict) -> None:
    import numpy as np
    import openvino as ov
    import openvino_genai as og

    try:
        config = og.SchedulerConfig()
        for name, value in scheduler.items():
            setattr(config, name, value)
        pipe = og.ContinuousBatchingPipeline(ov_dir, config, "CPU", properties)
    except Exception as exc:  # reported to the engine, which fails the service's load
        conn.send(("error", repr(exc)))
        return
    conn.send(("ready", None))
    handles: dict[int, Any] = {}
    while True:
        try:
            commands = conn.recv()
        except EOFError:  # the engine is gone
            return
        out: list[tuple[int, list[int], list[float], str]] = []
        for command, rid, *args in commands:
            if command == "add":
                ids, options = args
                try:
                    tensor = ov.Tensor(np.array([ids], dtype=np.int64))
                    handles[rid] = pipe.add_request(rid, tensor, _config(options))
                except Exception as exc:  # this request fails alone
                    out.append((rid, [], [], f"error: {str(exc).strip()[-300:]}"))
            elif command == "cancel" and (handle := handles.pop(rid, None)) is not None:
                handle.cancel()  # leaves the pipeline, freeing its KV blocks, at the next step
        # Also when nothing runs: a step drops the requests just cancelled.
        if pipe.has_non_finished_requests():
            pipe.step()  # raising ends this process: the engine sees EOF and restarts it
        for rid, handle in list(handles.items()):
            tokens: list[int] = []
            logprobs: list[float] = []
            if handle.can_read():
                for output in handle.read().values():
                    tokens += output.generated_ids
                    logprobs += output.generated_log_probs
            status = handle.get_status()
            if status != og.GenerationStatus.RUNNING:
                del handles[rid]
            if tokens or status != og.GenerationStatus.RUNNING:
                out.append((rid, tokens, logprobs, status.name))
        conn.send((out, pipe.has_non_finished_requests()))


def _config(options: dict):
    """A GenerationConfig from the engine's options; `grammar` (a format, see grammar.py)
    becomes its structured-output config."""
    import openvino_genai as og

    from llm_chat.grammar import openvino_config

    options = dict(options)
    grammar = options.pop("grammar", None)
    config = og.GenerationConfig(**options)
    if grammar is not None:
        config.structured_output_config = openvino_config(grammar)
    return config
