"""``/llm``: LLM requests, token streaming and chat history."""

from __future__ import annotations

from newage.realtime.base import BaseNamespace


class LlmNamespace(BaseNamespace):
    pass
