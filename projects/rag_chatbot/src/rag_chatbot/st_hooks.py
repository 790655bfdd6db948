"""Schemathesis hooks for the RAG API: `SCHEMATHESIS_HOOKS=rag_chatbot.st_hooks st run ...`."""

from rag_chatbot.testing import schemathesis_media_types

schemathesis_media_types()
