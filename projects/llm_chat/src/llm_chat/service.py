"""The OpenAI-compatible chat server: `/v1/chat/completions`, `/v1/completions`, `/v1/models`.

Run: `llm-chat serve` (settings from `LLM_CHAT_*` variables or `.env`). One process holds the
model; concurrency comes from the engine's continuous batching, not from uvicorn workers.
"""

from pathlib import Path

from fastapi import FastAPI

from llm_chat.chat_model import ChatModel
from llm_chat.completions_api import router as completions_router
from llm_chat.safety import SafetyFilter
from llm_chat.settings import Settings
from llm_chat.tokenize_api import router as tokenize_router
from llm_chat.validation import install_validation_handler
from mlstack.serve import create_app

STATIC = Path(__file__).parent / "static"


def build_app(settings: Settings) -> FastAPI:
    app = create_app(
        title="llm-chat",
        settings=settings,
        demo_dir=STATIC,
        load_models=lambda: [ChatModel(settings)],
    )
    app.state.resources["safety"] = SafetyFilter(
        blocked_topics=settings.blocked_topics,
        redact_pii=settings.redact_pii,
        refuse_injection=settings.refuse_prompt_injection,
    )
    install_validation_handler(app)
    app.include_router(completions_router)
    app.include_router(tokenize_router)
    return app


def app_factory() -> FastAPI:
    """Zero-argument factory for uvicorn (`--factory`): settings from the environment."""
    return build_app(Settings())
