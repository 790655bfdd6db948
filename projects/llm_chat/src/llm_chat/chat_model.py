"""The served model: the tokenizer, the engine for the configured backend and the model card."""

import time

from llm_chat import metrics
from llm_chat.logprobs import TokenText
from llm_chat.settings import Settings
from mlstack.registry import installed_version
from mlstack.serve import ModelCard


class ChatModel:
    """The engine as a served model: it schedules its own batches, so no micro-batcher."""

    predict_batch = None

    def __init__(self, settings: Settings) -> None:
        from transformers import AutoTokenizer

        from llm_chat.backends import stop_tokens
        from llm_chat.ov_engine import engine_for

        started = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(settings.model_dir)
        eos = stop_tokens(settings.model_dir, self.tokenizer)
        loading = {
            "slots": settings.slots,
            "max_len": settings.context_tokens,
            "threads": settings.threads,
            "gguf": settings.gguf,
            "onnx_dir": settings.onnx_dir,
            "ov_dir": settings.ov_dir,
            "ov_precision": settings.ov_precision,
        }
        self.engine = engine_for(
            settings.backend,
            settings.model_dir,
            self.tokenizer,
            backend_options=loading,
            eos=eos,
            max_queue=settings.max_queue,
            chunk_tokens=settings.prefill_chunk_tokens,
            observer=metrics.PrometheusObserver(settings.model_name),
        )
        backend = self.engine.backend
        self.context, self.vocab_size = backend.max_len, backend.vocab_size
        self.token_text = TokenText(self.tokenizer)  # logprobs' token strings and bytes
        registered = installed_version(settings.model_dir) or {}  # a champion folder's
        self.card = ModelCard(
            settings.model_name,
            registered.get("version", "1"),
            path=str(settings.model_dir),
            load_seconds=time.perf_counter() - started,
            extra={
                "backend": backend.name,
                "context_tokens": backend.max_len,
                "slots": backend.slots,
                "registered_model": registered.get("registered_model"),
            },
        )

    def warmup(self) -> None:
        """One short generation: a model that cannot generate fails the load (and liveness)."""
        import threading

        from llm_chat.sampling import SamplingParams

        finished, reasons = threading.Event(), []

        def emit(delta) -> None:
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
                finished.set()

        prompt = self.tokenizer("Hello")["input_ids"]
        self.engine.submit(prompt, SamplingParams(max_tokens=2, temperature=0), emit)
        if not finished.wait(timeout=300):
            raise TimeoutError("warm-up generation did not finish in 300 s")
        if reasons[0] not in ("stop", "length"):
            raise RuntimeError(f"warm-up generation ended with {reasons[0]!r} (see the log)")

    def close(self) -> None:
        self.engine.stop()
