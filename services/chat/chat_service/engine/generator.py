"""The generator engine: one ONNX Runtime GenAI Generator per request, behind an async interface.

Each generation runs its token loop on a worker thread (ONNX Runtime releases the GIL), so the event loop keeps
serving other requests and /health. Sampling is ours (see sampler.py) so penalties and seeds behave as OpenAI's.
Generations waiting for a worker start in priority order (waiting.py): each task handed to the pool runs whichever
queued generation comes first, not the one it was submitted for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime_genai as og

from chat_service.engine.config import EngineConfig
from chat_service.engine.detokenizer import IncrementalDetokenizer
from chat_service.engine.fingerprint import system_fingerprint
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.sampler import TokenSampler
from chat_service.engine.thread_events import END, InFlight, events_from_thread
from chat_service.engine.types import EngineClosedError, EngineLoadError, EngineStats, GenerationRequest, TokenEvent
from chat_service.engine.waiting import WaitingRows

logger = logging.getLogger(__name__)


def session_overlay(config: EngineConfig) -> dict[str, Any]:
    """The genai_config overlay the decoder session opens with: threads, and the spinning policy's config entries,
    which ONNX Runtime GenAI hands to onnxruntime as they are (any session_options key it does not know itself is a
    config entry; a string value, as onnxruntime takes them)."""
    session_options: dict[str, Any] = {"intra_op_num_threads": config.threads, **config.spinning.config_entries()}
    return {"model": {"decoder": {"session_options": session_options}}}


@dataclass(eq=False)
class QueuedGeneration:
    request: GenerationRequest
    emit: Callable[[Any], None]
    cancelled: threading.Event


class GeneratorEngine:
    name = "generator"

    def __init__(self, folder: ModelFolder, config: EngineConfig) -> None:
        """`folder` is opened with config.max_model_len; config.workers generations run at once."""
        model_path = self.model_path = folder.model_path
        self.context_length = folder.context_length
        self.tokenizer = folder.tokenizer
        try:
            overlay = session_overlay(config)
            folder.og_config.overlay(json.dumps(overlay))
            self._model = og.Model(folder.og_config)
        except Exception as exc:  # og raises RuntimeError with its own text; keep it, name the path
            raise EngineLoadError(f"model path {model_path} could not be loaded by ONNX Runtime GenAI: {exc}") from exc
        logger.info(
            "generator engine on %s: decoder session options %s",
            model_path,
            overlay["model"]["decoder"]["session_options"],
        )
        self._executor = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="generate")
        self._closing = threading.Event()
        self.in_flight = InFlight()
        self._stats_lock = threading.Lock()  # the counts below are written by every worker thread
        self._running = self._steps = 0
        self._waiting: WaitingRows[QueuedGeneration] = WaitingRows()  # under _stats_lock too
        # One request per generator: a row is always alone, so this engine is batch-invariant by construction.
        self.system_fingerprint = system_fingerprint(model_path, "generator", True)

    def stats(self) -> EngineStats:
        with self._stats_lock:
            running, steps, batch_waiting = self._running, self._steps, self._waiting.depth("batch")
        # Waiting: started on the event loop (in flight) but not yet on a worker thread.
        return EngineStats(
            rows_decoding=running,
            rows_waiting=max(0, self.in_flight.count - running),
            rows_waiting_batch=batch_waiting,
            decode_steps=steps,
        )

    def close(self) -> None:
        """Generations still running end with EngineClosedError at their next token (queued ones at once)."""
        self._closing.set()
        # Queued work is not cancelled: cancelled, it would never tell its client that it ended.
        self._executor.shutdown(wait=True)
        self._model = None

    # Generation --------------------------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> AsyncGenerator[TokenEvent, None]:
        """Yield one TokenEvent per generated token; leaving the iterator early stops the loop within one step."""
        loop = asyncio.get_running_loop()

        def start(emit: Callable[[Any], None], cancelled: threading.Event) -> None:
            queued = QueuedGeneration(request, emit, cancelled)
            with self._stats_lock:
                self._waiting.append(queued)
            try:
                loop.run_in_executor(self._executor, self._run_next)
            except RuntimeError as exc:  # the executor has shut down
                with self._stats_lock:
                    self._waiting.discard(queued)  # no task will run it
                raise EngineClosedError("the model was unloaded before this generation started") from exc

        return events_from_thread(start, self.in_flight)

    def _run_next(self) -> None:
        """One task per generation submitted, each running the first queued one: interactive before batch."""
        with self._stats_lock:
            queued = self._waiting.take(1, 1, 1)[0]
            self._running += 1
        self._run(queued.request, queued.emit, queued.cancelled)

    def _run(self, request: GenerationRequest, emit: Callable[[Any], None], cancelled: threading.Event) -> None:
        try:
            self._loop(request, emit, cancelled)
        except BaseException as exc:  # handed to the awaiting coroutine, which re-raises it
            emit(exc)
        finally:
            with self._stats_lock:
                self._running -= 1
            emit(END)

    def _loop(self, request: GenerationRequest, emit: Callable[[Any], None], cancelled: threading.Event) -> None:
        params = og.GeneratorParams(self._model)
        # max_length bounds the preallocated KV cache; left unset it would be the whole context.
        params.set_search_options(max_length=len(request.prompt_ids) + request.max_tokens, batch_size=1)
        generator = og.Generator(self._model, params)
        try:
            tokenizer = self.tokenizer
            sampler = TokenSampler(request.sampling, tokenizer.vocab_size, tokenizer.vocabulary, request.prompt_ids)
            detok = IncrementalDetokenizer(tokenizer.decode)
            generator.append_tokens(np.asarray(request.prompt_ids, dtype=np.int32))
            for step in range(request.max_tokens):
                if cancelled.is_set():
                    return
                if self._closing.is_set():
                    raise EngineClosedError("the model was unloaded while this generation was running")
                logits = generator.get_logits()
                with self._stats_lock:
                    self._steps += 1
                token = sampler.sample(logits.reshape(-1, logits.shape[-1])[-1])
                if token in tokenizer.eos_token_ids:
                    emit(TokenEvent(token, detok.flush(), "stop", sampler.logprobs))
                    return
                text = detok.push(token)
                if step + 1 == request.max_tokens:
                    emit(TokenEvent(token, text + detok.flush(), "length", sampler.logprobs))
                    return
                emit(TokenEvent(token, text, None, sampler.logprobs))
                generator.append_tokens(np.asarray([token], dtype=np.int32))
        finally:
            del generator
