"""The batched engine: continuous batching on onnxruntime, for graphs that fit it (SmolLM2, Phi-3, Qwen2.5 and other
builder outputs; graph.py says what fits).

Generation runs in the BatchScheduler on plain onnxruntime; the tokenizer and chat template come from the folder
opened by ONNX Runtime GenAI without its weights (ModelFolder), so the weights are in memory once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.batched.graph import check_batched_graph
from chat_service.engine.batched.prefix_cache import PrefixCache
from chat_service.engine.batched.scheduler import BatchScheduler
from chat_service.engine.config import EngineConfig
from chat_service.engine.fingerprint import system_fingerprint
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.spinning import SPINNING_KEYS
from chat_service.engine.thread_events import END, InFlight, events_from_thread
from chat_service.engine.types import EngineLoadError, EngineStats, GenerationRequest, TokenEvent

logger = logging.getLogger(__name__)

# Without CHAT_MAX_MODEL_LEN, slots are this long at most: Phi-3.5's 131072 positions × 8 slots would reserve
# hundreds of GB of address space for KV.
DEFAULT_SLOT_LEN_CAP = 8192


class BatchedEngine:
    name = "batched"

    def __init__(self, folder: ModelFolder, config: EngineConfig) -> None:
        """`folder` is opened with config.max_model_len. EngineLoadError, naming the file and what does not fit,
        before any weights are read when the graph does not fit this engine."""
        if config.batch_invariant and config.slots < 2:
            raise EngineLoadError("batch-invariant decoding needs at least 2 KV slots (max_batch_size >= 2)")
        check_batched_graph(folder.model_path, folder.config)
        self._folder = folder
        self.in_flight = InFlight()
        # One KV region per slot, as long as the longest request allowed (prompt + max_tokens ≤ context_length).
        capped = config.max_model_len is not None
        self.context_length = folder.context_length if capped else min(folder.context_length, DEFAULT_SLOT_LEN_CAP)
        decoder = OnnxDecoder(
            folder.model_path,
            folder.config,
            config.threads,
            config.slots,
            self.context_length,
            config.spinning.config_entries(),
            kv_dtype=config.kv_cache_dtype,
        )
        self._prefix_cache = PrefixCache(decoder.cache, config.prefix_block_tokens, config.prefix_cache_bytes)
        self.tokenizer = folder.tokenizer
        self._fingerprint = system_fingerprint(
            folder.model_path, "batched", config.batch_invariant, str(decoder.kv_dtype)
        )
        self._scheduler = BatchScheduler(decoder, folder.tokenizer, self._prefix_cache, config, END)
        self._scheduler.start()
        logger.info(
            "batched engine on %s: %d slots of up to %d positions, %d kept for interactive requests (%.1f MB of KV "
            "per 1k positions per slot, %s); prefix cache of %d blocks of %d tokens; onnxruntime thread spinning %s; "
            "%.1f MB of the weight file's pages given back after loading; gathering from the weight file: %s",
            folder.model_path,
            config.slots,
            self.context_length,
            self._scheduler.reserved,
            decoder.cache.bytes_per_position * 1000 / 2**20,
            decoder.kv_dtype,
            self._prefix_cache.capacity_blocks,
            config.prefix_block_tokens,
            decoder.session_entries(SPINNING_KEYS) or "as onnxruntime's defaults",
            decoder.released_bytes / 2**20,
            ", ".join(decoder.file_tables) or "none",
        )

    @property
    def system_fingerprint(self) -> str:
        return self._fingerprint

    def stats(self) -> EngineStats:
        return self._scheduler.stats()

    def generate(self, request: GenerationRequest) -> AsyncGenerator[TokenEvent, None]:
        """Same contract as the generator engine's generate: leaving early frees the row within one step."""
        return events_from_thread(
            lambda emit, cancelled: self._scheduler.submit(request, emit, cancelled), self.in_flight
        )

    def close(self) -> None:
        """Generations still running or queued end with EngineClosedError."""
        self._scheduler.stop()
