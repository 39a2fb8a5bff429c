"""LLM backends behind one protocol: embedded llama.cpp, OpenAI-compatible HTTP."""

from __future__ import annotations

from sloflow.config import Settings
from sloflow.llm.backend import Backend
from sloflow.llm.types import Chunk, Completion, GenerateRequest, Message

__all__ = ["Backend", "Chunk", "Completion", "GenerateRequest", "Message", "open_backend"]


def open_backend(settings: Settings, model: str | None = None, *, instances: int = 1) -> Backend:
    """The backend the settings describe; `model` overrides the embedded model name or path."""
    if settings.backend == "openai":
        from sloflow.llm.openai_http import OpenAIBackend

        return OpenAIBackend(
            settings.openai_base_url,
            model or settings.openai_model,
            api_key=settings.openai_api_key,
            timeout_s=settings.openai_timeout_s,
            retries=settings.openai_retries,
        )
    from sloflow.llm.embedded import EmbeddedBackend

    return EmbeddedBackend(
        model or settings.model,
        models_dir=settings.home / "models",
        threads=settings.threads,
        context_tokens=settings.context_tokens,
        instances=instances,
    )
