"""One request's row in the batch: its sampler, detokenizer and counts, and the event each sampled token makes."""

from __future__ import annotations

import threading
from collections.abc import Container
from dataclasses import dataclass, field

from chat_service.engine.batched.speculation import SpeculationState
from chat_service.engine.detokenizer import IncrementalDetokenizer
from chat_service.engine.sampler import TokenSampler
from chat_service.engine.thread_events import Emit
from chat_service.engine.types import FinishReason, GenerationRequest, TokenEvent


@dataclass
class BatchRow:
    request: GenerationRequest
    emit: Emit
    cancelled: threading.Event
    sampler: TokenSampler
    detokenizer: IncrementalDetokenizer
    length: int = 0  # positions in this row's KV slot
    cached_tokens: int = 0  # prompt positions copied from the prefix cache instead of computed
    generated: int = 0
    next_token: int = -1
    fed: list[int] = field(default_factory=list)  # generated tokens whose KV is in the slot (all but the last)
    done: bool = field(default=False)
    speculates: bool = False  # may verify prompt-lookup drafts while it decodes (nearly) alone
    speculation: SpeculationState | None = None  # its drafter, from its first verify call on

    @property
    def is_batch(self) -> bool:
        return self.request.priority == "batch"

    def token_event(self, token: int, eos_token_ids: Container[int]) -> TokenEvent:
        """Count a sampled token and make its event: its text so far, and the finish reason on EOS or max_tokens."""
        self.generated += 1
        if self.speculation is not None:
            self.speculation.append(token)
            self.speculates = self.speculates and not self.speculation.given_up
        finish: FinishReason | None = None
        if token in eos_token_ids:
            text, finish = self.detokenizer.flush(), "stop"
        else:
            text = self.detokenizer.push(token)
            if self.generated >= self.request.max_tokens:
                text, finish = text + self.detokenizer.flush(), "length"
        cached = self.cached_tokens if self.generated == 1 else 0
        self.next_token = token
        return TokenEvent(token, text, finish, self.sampler.logprobs, cached)
