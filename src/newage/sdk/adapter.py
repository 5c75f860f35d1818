"""``newage adapter openai``: an :class:`Extension` answering from any
OpenAI-compatible backend (LM Studio, llama.cpp's server, vLLM, Ollama's
``/v1``), through the official ``openai`` client (``newage[adapter]``).

Each request's chat ``messages`` go to the backend: those an API request
brought along, or ones built from the room's context (see
:attr:`Request.messages`). Sampling fields of an API request
(``temperature``, ``max_tokens``, ...) are passed on. A cancelled request
closes the backend's stream, so the backend stops generating too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, cast

from newage.sdk.extension import Extension
from newage.sdk.request import Request
from openai import AsyncOpenAI

PASSED_ON = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
)


class OpenAIBackend:
    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, stream: bool = True
    ) -> None:
        # local servers want no key, but the client insists on one
        self.client = AsyncOpenAI(base_url=base_url, api_key=api_key or "none")
        self.model = model
        self.stream = stream

    def __call__(self, request: Request) -> AsyncIterator[str] | Awaitable[str]:
        return self._streamed(request) if self.stream else self._whole(request)

    def _params(self, request: Request) -> dict[str, Any]:
        given = request.current
        params = {name: given[name] for name in PASSED_ON if given.get(name) is not None}
        return {"model": self.model, "messages": cast(Any, request.messages), **params}

    async def _streamed(self, request: Request) -> AsyncIterator[str]:
        stream = await self.client.chat.completions.create(**self._params(request), stream=True)
        try:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        finally:
            await stream.close()

    async def _whole(self, request: Request) -> str:
        completion = await self.client.chat.completions.create(**self._params(request))
        return completion.choices[0].message.content or "" if completion.choices else ""


def openai_adapter(
    server: str,
    client_id: str,
    backend: OpenAIBackend,
    *,
    password: str | None = None,
    key: str | None = None,
) -> Extension:
    return Extension(
        server,
        client_id,
        backend,
        password=password,
        key=key,
        desc=f"OpenAI-compatible backend {backend.model}",
    )
