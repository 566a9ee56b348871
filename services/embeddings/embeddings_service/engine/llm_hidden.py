"""Embeddings from a decoder LLM on ONNX Runtime GenAI: its last hidden state, mean over the tokens, L2-normed.

The folder must have been built with a `hidden_states` output (the builder's include_hidden_states=true). Without
it the model still loads, `unsupported_reason` says why, and the serving layer refuses requests with a 400.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime_genai as og

from embeddings_service.engine.pooling import l2_normalize
from embeddings_service.engine.types import EncodedInput, EngineLoadError

logger = logging.getLogger(__name__)

HIDDEN_STATES = "hidden_states"


class LlmHiddenStateEmbedder:
    def __init__(self, model_path: Path, threads: int) -> None:
        try:
            config = og.Config(str(model_path))
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
            self._model = og.Model(config)
        except Exception as exc:  # og raises RuntimeError with its own text; keep it, name the path
            raise EngineLoadError(f"model path {model_path} could not be loaded by ONNX Runtime GenAI: {exc}") from exc
        self.model_path = model_path
        self.unsupported_reason = self._probe_hidden_states()

    def _probe_hidden_states(self) -> str | None:
        """One token through the model: the only dependable way to learn whether the graph has the output."""
        try:
            self._hidden_states([0])
        except RuntimeError as exc:
            logger.warning("%s has no %s output: %s", self.model_path, HIDDEN_STATES, exc)
            return (
                f"this model folder ({self.model_path.name}) has no '{HIDDEN_STATES}' output, so it cannot produce "
                "embeddings; rebuild it with the ONNX Runtime GenAI builder option include_hidden_states=true"
            )
        return None

    def _hidden_states(self, ids: list[int]) -> np.ndarray:
        params = og.GeneratorParams(self._model)
        # max_length sizes the KV cache; only the prompt is run, so exactly its length is enough.
        params.set_search_options(max_length=len(ids), batch_size=1)
        generator = og.Generator(self._model, params)
        try:
            generator.append_tokens(np.asarray(ids, dtype=np.int32))
            return np.asarray(generator.get_output(HIDDEN_STATES), dtype=np.float32)
        finally:
            del generator

    def run_batch(self, batch: list[EncodedInput]) -> np.ndarray:
        # Row by row: the batcher still groups concurrent requests, but an ORT GenAI batch would need the pad id as
        # the mask, and a text may legitimately contain that token (SmolLM2 pads with <|im_end|>).
        rows = [self._hidden_states(item.ids)[0].mean(axis=0) for item in batch]
        return l2_normalize(np.stack(rows))

    def close(self) -> None:
        self._model = None
