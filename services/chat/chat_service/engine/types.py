"""Plain data passed between the serving layer and the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ortserve_common.priority import DEFAULT_PRIORITY, Priority

FinishReason = Literal["stop", "length"]
GuidanceKind = Literal["json_schema", "regex", "lark"]


class EngineLoadError(RuntimeError):
    """The model folder is missing or unusable; the message names the path and the files expected."""


class EngineClosedError(RuntimeError):
    """The engine was closed (its model unloaded, the service stopping) before this generation ended."""


@dataclass(frozen=True)
class GuidanceSpec:
    """A constraint on the output: a JSON schema (as JSON text), a regular expression, or a Lark grammar."""

    kind: GuidanceKind
    source: str
    grammar: str | None = None  # llguidance's grammar, once compiled and checked (check_guidance): never twice


@dataclass(frozen=True)
class SamplingParams:
    """Everything the per-request sampler needs to choose each next token from one row of raw logits."""

    temperature: float = 0.7
    top_p: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    # None: no logprobs; N (0-20): the chosen token's logprob and the N most likely alternatives at each step.
    logprobs: int | None = None
    guidance: GuidanceSpec | None = None
    # OpenAI's logit_bias: (token id, bias) pairs added to the logits before anything else looks at them.
    logit_bias: tuple[tuple[int, float], ...] = ()
    top_k: int = 0  # 0: off
    min_p: float = 0.0  # 0: off
    repetition_penalty: float = 1.0  # 1: off; applies to the prompt's tokens and the output's

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class GenerationRequest:
    prompt_ids: list[int]
    max_tokens: int
    sampling: SamplingParams
    # Prefix-cache entries are shared only among requests of the same scope (the API key): whether a prompt was
    # cached shows in its TTFT and cached_tokens, so one key must not learn what another one sent.
    cache_scope: str = ""
    # interactive requests take free KV slots before queued batch ones, and the slots kept for them (ortserve_common.
    # priority, EngineConfig.interactive_reserved_slots).
    priority: Priority = DEFAULT_PRIORITY
    # Prompt-lookup drafts per verify call at most (speculation.py): None takes the server's default, 0 turns it off.
    speculative_tokens: int | None = None


@dataclass(frozen=True)
class TokenLogprobs:
    """The chosen token's log probability and the `top` most likely (token id, logprob) pairs, best first."""

    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class TokenEvent:
    """One generated token and the text it completed (may be empty while a UTF-8 sequence is still partial)."""

    token_id: int
    text: str
    finish_reason: FinishReason | None = None
    logprobs: TokenLogprobs | None = None
    # On the first token only: how many prompt positions came from the prefix cache rather than being computed.
    cached_tokens: int = 0


@dataclass(frozen=True)
class EngineStats:
    """An engine's state now, for /metrics (read at scrape time) and the benchmarks."""

    rows_decoding: int  # rows in the running batch (a generation the generator engine runs)
    rows_waiting: int  # submitted, not yet given a KV slot
    rows_waiting_batch: int = 0  # those of them that are batch requests' (the rest are interactive)
    kv_slots: int = 0  # KV slots the engine has (the batched engine's max_batch_size)
    kv_slots_used: int = 0  # decoding rows and a long prompt being prefilled in chunks
    kv_positions_used: int = 0  # positions cached in the slots in use
    kv_positions_allocated: int = 0  # slots × the slots' current length (they grow on demand, shrink when idle)
    kv_bytes_per_position: int = 0  # one position of one slot, every layer's key and value
    prefix_cache_hit_tokens: int = 0  # prompt tokens whose KV was copied from the prefix cache, since the start
    prefix_cache_blocks: int = 0  # blocks the prefix cache holds now
    decode_steps: int = 0  # batched decode calls since the start (generator: tokens generated)
    spec_verify_steps: int = 0  # a lone row's speculative verify calls (each one step of that row)
    spec_draft_tokens: int = 0  # prompt-lookup tokens drafted into those calls
    spec_accepted_tokens: int = 0  # of those, the ones the row's sampler drew: tokens gained over one per step
    spec_rows_given_up: int = 0  # rows that stopped speculating, their drafts seldom right (speculation.py)
