"""How an engine is built: one frozen EngineConfig, made from the chat settings in one place (from_settings), so the
pool, the benchmarks and the tests build engines the same way. Durations are in seconds here, as the scheduler
keeps them; the settings give milliseconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from ortserve_common.cpu import engine_threads

from chat_service.engine.spinning import SpinPolicy, ThreadSpinning

EngineName = Literal["batched", "generator"]
EngineChoice = Literal["batched", "generator", "auto"]
KVCacheDtype = Literal["float32", "float16"]


class EngineSettings(Protocol):
    """The settings fields an engine is built from (ChatSettings has them all; the engine never imports it)."""

    engine: EngineChoice
    engine_threads: int | None
    engine_spin: SpinPolicy
    engine_spin_us: int | None
    engine_dynamic_block_base: int | None
    max_model_len: int | None
    max_batch_size: int
    batch_wait_ms: float
    max_prefills_per_step: int
    refill_wait_ms: float
    prefix_cache_mb: int
    prefix_block_tokens: int
    prefix_cache_replies: bool
    batch_invariant: bool
    max_concurrency: int
    interactive_reserved_slots: int
    prompt_lookup: bool
    prompt_lookup_tokens: int
    prompt_lookup_max_rows: int
    prompt_lookup_ngram: int
    prompt_lookup_probation: int
    kv_cache_dtype: KVCacheDtype


@dataclass(frozen=True)
class EngineConfig:
    engine: EngineChoice = "batched"  # auto: batched where the graph fits it, else generator (the load log says)
    threads: int = 1  # ONNX Runtime intra-op threads
    spinning: ThreadSpinning = ThreadSpinning()  # how those threads wait for work (session config entries)
    max_model_len: int | None = None  # cap on prompt + completion; None: the model's context (slots capped lower)
    slots: int = 8  # KV slots: rows the batched engine decodes together
    workers: int = 8  # generations the generator engine runs at once (one thread each)
    batch_wait_s: float = 0.0  # an idle batched engine waits this long, so that arrivals close together start together
    prefills_per_step: int = 1  # new prompts prefilled between two decode steps
    refill_wait_s: float = 0.0  # after a row finishes, how long the next step waits for a request to take its slot
    prefix_cache_bytes: int = 0  # 0: no prefix reuse
    prefix_block_tokens: int = 32
    # Keep a finished reply's KV for the next turn. Off by default: those positions were computed one token per decode
    # step, which differs in the low bits from the chunked prefill a cold request gets (see prefix_cache), so a
    # seeded request would no longer reproduce whichever way it is served.
    cache_replies: bool = False
    # Never decode one row alone: a lone row is run beside a scratch row. On CPUs whose int4 kernels differ between
    # one row and several (AVX2), a row's logits then no longer depend on how many others share its steps, so a
    # seeded request gives the same tokens alone and in company. Costs the lone stream one more row per step.
    batch_invariant: bool = False
    # KV slots that batch requests may not take, so an interactive request in a batch flood waits for one turn of the
    # scheduler (a step or a prefill) and its own prefill, not for a batch answer to end. At most slots - 1.
    interactive_reserved_slots: int = 0
    # Prompt-lookup speculation (batched/speculation.py): on for requests that do not say, drafts per verify call
    # at most, while at most this many rows decode, from n-grams of up to this many tokens, after a probation of
    # this many tokens decoded one a step while the lookup's guesses are scored.
    prompt_lookup: bool = False
    prompt_lookup_tokens: int = 8
    prompt_lookup_max_rows: int = 1
    prompt_lookup_ngram: int = 3
    prompt_lookup_probation: int = 16
    # The batched engine's KV cache: float32 as the graph is built, or float16 (half the memory; batched/half_kv.py).
    # The engine's own default is the graph's type; the service's (CHAT_KV_CACHE_DTYPE) is float16.
    kv_cache_dtype: KVCacheDtype = "float32"

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> EngineConfig:
        """A model's settings (ModelConfig.settings: the service's, with its models-file entry's in their place)."""
        return cls(
            engine=settings.engine,
            threads=engine_threads(settings.engine_threads),
            spinning=ThreadSpinning(settings.engine_spin, settings.engine_spin_us, settings.engine_dynamic_block_base),
            max_model_len=settings.max_model_len,
            slots=settings.max_batch_size,
            workers=settings.max_concurrency,  # as many as the model admits at once
            batch_wait_s=settings.batch_wait_ms / 1000,
            prefills_per_step=settings.max_prefills_per_step,
            refill_wait_s=settings.refill_wait_ms / 1000,
            prefix_cache_bytes=settings.prefix_cache_mb * 2**20,
            prefix_block_tokens=settings.prefix_block_tokens,
            cache_replies=settings.prefix_cache_replies,
            batch_invariant=settings.batch_invariant,
            interactive_reserved_slots=settings.interactive_reserved_slots,
            prompt_lookup=settings.prompt_lookup,
            prompt_lookup_tokens=settings.prompt_lookup_tokens,
            prompt_lookup_max_rows=settings.prompt_lookup_max_rows,
            prompt_lookup_ngram=settings.prompt_lookup_ngram,
            prompt_lookup_probation=settings.prompt_lookup_probation,
            kv_cache_dtype=settings.kv_cache_dtype,
        )
