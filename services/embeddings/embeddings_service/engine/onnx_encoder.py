"""Encoder models on plain onnxruntime: bi-encoder embeddings (MiniLM) and cross-encoder scores (rerankers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from embeddings_service.engine.pooling import cls_pool, l2_normalize, mean_pool
from embeddings_service.engine.types import EncodedInput, EngineLoadError


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # One batch at a time per model: operator-level parallelism buys nothing on a few cores and costs memory.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


class OnnxEncoder:
    """An encoder graph with inputs input_ids, attention_mask (and token_type_ids, when it has that input)."""

    def __init__(self, model_file: Path, threads: int, output: str | None = None) -> None:
        try:
            self._session = ort.InferenceSession(
                str(model_file), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types with useful text; keep it, name the file
            raise EngineLoadError(f"{model_file} could not be loaded by onnxruntime: {exc}") from exc
        inputs = {i.name for i in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - inputs
        if missing:
            raise EngineLoadError(f"{model_file} has no {', '.join(sorted(missing))} input (it has {sorted(inputs)})")
        self._has_type_ids = "token_type_ids" in inputs
        outputs = {o.name: o for o in self._session.get_outputs()}
        self.output = output if output in outputs else next(iter(outputs))
        width = outputs[self.output].shape[-1]
        self.output_width = width if isinstance(width, int) else None  # None when the graph leaves it symbolic

    def run(self, batch: list[EncodedInput]) -> tuple[np.ndarray, np.ndarray]:
        """The output for a right-padded batch, and the attention mask it was run with."""
        width = max(len(item) for item in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        type_ids = np.zeros((len(batch), width), dtype=np.int64)
        for row, item in enumerate(batch):
            ids[row, : len(item)] = item.ids
            mask[row, : len(item)] = 1
            if item.type_ids is not None:
                type_ids[row, : len(item)] = item.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self._has_type_ids:
            feeds["token_type_ids"] = type_ids
        return self._session.run([self.output], feeds)[0], mask

    def close(self) -> None:
        self._session = None


class EncoderEmbedder:
    """Sentence embeddings: the encoder's last hidden state, pooled over the attention mask, optionally L2-normed."""

    def __init__(self, model_file: Path, threads: int, pooling: str, normalize: bool) -> None:
        if pooling not in ("mean", "cls"):
            raise EngineLoadError(f"{model_file}: pooling {pooling!r} is not supported (mean or cls)")
        self._encoder = OnnxEncoder(model_file, threads, output="last_hidden_state")
        self.pooling = pooling
        self.normalize = normalize
        self.dimensions = self._encoder.output_width

    def run_batch(self, batch: list[EncodedInput]) -> np.ndarray:
        states, mask = self._encoder.run(batch)
        if states.ndim == 2:  # the graph pools itself (a sentence_embedding output)
            pooled = states.astype(np.float32)
        elif self.pooling == "cls":
            pooled = cls_pool(states)
        else:
            pooled = mean_pool(states, mask)
        return l2_normalize(pooled) if self.normalize else pooled

    def close(self) -> None:
        self._encoder.close()


class CrossEncoderScorer:
    """Relevance of (query, document) pairs: the classifier's single logit through a sigmoid, so scores are 0–1
    (sentence-transformers' CrossEncoder default for one-label models)."""

    def __init__(self, model_file: Path, threads: int) -> None:
        self._encoder = OnnxEncoder(model_file, threads, output="logits")

    def run_batch(self, batch: list[EncodedInput]) -> np.ndarray:
        logits, _ = self._encoder.run(batch)
        logits = logits.reshape(len(batch), -1)[:, 0].astype(np.float64)
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)

    def close(self) -> None:
        self._encoder.close()
