"""What serving needs of a chat engine, and of its tokenizer. The batched engine, the generator engine and the
tests' doubles all implement these; serving code is typed against them only."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any, Protocol

from chat_service.engine.thread_events import InFlight
from chat_service.engine.types import EngineStats, GenerationRequest, TokenEvent
from chat_service.engine.vocabulary import Vocabulary


class Tokenizer(Protocol):
    @property
    def vocab_size(self) -> int: ...

    @property
    def vocabulary(self) -> Vocabulary | None:
        """Every token's bytes, for guided decoding and logprobs; None where they are unknown (guidance is then
        refused, and logprobs carry the decoded text only)."""

    @property
    def eos_token_ids(self) -> frozenset[int]: ...

    @property
    def template_renders_tools(self) -> bool:
        """Whether the chat template renders a `tools` argument itself (else tools go in as a system prompt)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str: ...


class ChatEngine(Protocol):
    @property
    def name(self) -> str:
        """batched or generator: the CHAT_ENGINE value, the model card's `engine`, the log's word."""

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def context_length(self) -> int:
        """Prompt + completion tokens one request may take."""

    @property
    def system_fingerprint(self) -> str:
        """Changes whenever the numbers behind a reply may (CPU kernels, runtime, engine, model build)."""

    @property
    def in_flight(self) -> InFlight:
        """The generations running now (unloading the model waits for them)."""

    def stats(self) -> EngineStats:
        """Rows decoding and waiting, KV and prefix-cache use, steps so far; callable from any thread."""

    def generate(self, request: GenerationRequest) -> AsyncGenerator[TokenEvent, None]:
        """One event per generated token; leaving the iterator early stops the generation within one step."""

    def close(self) -> None:
        """Free the model; generations still running end with EngineClosedError."""
