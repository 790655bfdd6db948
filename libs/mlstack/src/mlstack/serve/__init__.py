"""The FastAPI kit every service uses: `create_app`, the error envelope, the readiness gate,
the bounded CPU pool, micro-batching, shadow serving, `run`."""

from mlstack.serve.app import Hub, Settings, create_app
from mlstack.serve.batching import MicroBatcher
from mlstack.serve.errors import APIError
from mlstack.serve.gate import requires
from mlstack.serve.models import Deployment, ModelCard, ModelHub, ServedModel, file_sha256
from mlstack.serve.offload import offload
from mlstack.serve.openapi import error_responses
from mlstack.serve.settings import ServeSettings
from mlstack.serve.shadow import Shadow

__all__ = [
    "APIError",
    "Deployment",
    "Hub",
    "MicroBatcher",
    "ModelCard",
    "ModelHub",
    "ServeSettings",
    "ServedModel",
    "Settings",
    "Shadow",
    "create_app",
    "error_responses",
    "file_sha256",
    "offload",
    "requires",
]
