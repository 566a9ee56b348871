"""The chat engine with continuous batching, for graphs that fit it (SmolLM2, Phi-3 and other builder outputs).

Generation runs in the BatchScheduler on plain onnxruntime; the tokenizer and chat template come from the folder
opened by ONNX Runtime GenAI without its weights (ModelFolder), so the weights are in memory once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator

from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.batched.prefix_cache import PrefixCache
from chat_service.engine.batched.scheduler import BatchScheduler, SchedulerConfig
from chat_service.engine.fingerprint import system_fingerprint
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.thread_events import END, InFlight, events_from_thread
from chat_service.engine.types import EngineLoadError, GenerationRequest, TokenEvent

logger = logging.getLogger(__name__)

# Without CHAT_MAX_MODEL_LEN, slots are this long at most: Phi-3.5's 131072 positions × 8 slots would reserve
# hundreds of GB of address space for KV.
DEFAULT_SLOT_LEN_CAP = 8192


class ContinuousBatchingEngine:
    def __init__(
        self,
        inner: ModelFolder,
        threads: int,
        max_batch_size: int,
        batch_wait_ms: float,
        capped: bool,
        prefix_cache_bytes: int = 0,
        prefix_block_tokens: int = 32,
        prefills_per_step: int = 1,
        refill_wait_ms: float = 0.0,
        cache_replies: bool = False,
        batch_invariant: bool = False,
    ) -> None:
        if batch_invariant and max_batch_size < 2:
            raise EngineLoadError("batch-invariant decoding needs at least 2 KV slots (max_batch_size >= 2)")
        self._inner = inner
        self.in_flight = InFlight()
        config = json.loads((inner.model_path / "genai_config.json").read_text(encoding="utf-8"))
        # One KV region per slot, as long as the longest request allowed (prompt + max_tokens ≤ context_length).
        self.context_length = inner.context_length if capped else min(inner.context_length, DEFAULT_SLOT_LEN_CAP)
        self._decoder = OnnxDecoder(inner.model_path, config, threads, max_batch_size, self.context_length)
        self.prefix_cache = PrefixCache(self._decoder.cache, prefix_block_tokens, prefix_cache_bytes)
        self.tokenizer = inner.tokenizer
        self._fingerprint = system_fingerprint(inner.model_path, "batched", batch_invariant)
        self._scheduler = BatchScheduler(
            self._decoder,
            inner.tokenizer,
            self.prefix_cache,
            SchedulerConfig(
                batch_wait_ms / 1000, prefills_per_step, refill_wait_ms / 1000, cache_replies, batch_invariant
            ),
            END,
        )
        self._scheduler.start()
        logger.info(
            "continuous batching on %s: %d slots of up to %d positions (%.1f MB of KV per 1k positions per slot); "
            "prefix cache of %d blocks of %d tokens",
            inner.model_path,
            max_batch_size,
            self.context_length,
            self._decoder.cache.bytes_per_position * 1000 / 2**20,
            self.prefix_cache.capacity_blocks,
            prefix_block_tokens,
        )

    @property
    def system_fingerprint(self) -> str:
        return self._fingerprint

    @property
    def running(self) -> int:
        return self._scheduler.active

    @property
    def waiting(self) -> int:
        return self._scheduler.waiting

    def generate(self, request: GenerationRequest) -> AsyncGenerator[TokenEvent, None]:
        """Same contract as OrtGenAIEngine.generate: leaving early frees the row within one step."""
        return events_from_thread(
            lambda emit, cancelled: self._scheduler.submit(request, emit, cancelled), self.in_flight
        )

    def close(self) -> None:
        """Generations still running or queued end with EngineClosedError."""
        self._scheduler.stop()
        self._inner.close()
