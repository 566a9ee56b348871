"""The served int4 model's logits: the model folder the chat service loads, run by ONNX Runtime GenAI.

Each window runs in a fresh Generator (an empty KV cache, as llama.cpp clears its cache per window), and the
`logits` output of the prompt pass gives every position's logits at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime_genai as og


class Int4Model:
    def __init__(self, folder: Path, threads: int) -> None:
        config = og.Config(str(folder))
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)

    def encode(self, text: str) -> list[int]:
        """The served tokenizer's ids, no special tokens added (neither GGUF asks llama.cpp to add a BOS)."""
        return [int(t) for t in self.tokenizer.encode(text)]

    def logits(self, window: list[int]) -> np.ndarray:
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(window) + 1)  # the KV cache sized to the window, no more
        generator = og.Generator(self.model, params)
        generator.append_tokens(np.asarray(window, dtype=np.int32))
        return np.asarray(generator.get_output("logits"))[0]
