"""The plain ONNX Runtime GenAI loop, the reference that the chat engine's greedy output is compared with (tests) and
the engine limit measured (bench)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime_genai as og

from ortserve_testing.numerics import GreedyReference


class PlainGenerator:
    def __init__(self, model_path: Path, threads: int = 2, row_tolerance: float = 0.0) -> None:
        """`row_tolerance`: how far a batched engine's rows may differ from this loop's logits on this CPU (the
        greedy references carry it; ortserve_testing.numerics)."""
        self.row_tolerance = row_tolerance
        config = og.Config(str(model_path))
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self.tokenizer.encode(text)]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(np.asarray(ids, dtype=np.int32))

    def greedy(self, prompt: str, max_tokens: int) -> list[int]:
        """Greedy token ids, EOS included when it ends the sequence."""
        return self.greedy_with_margins(prompt, max_tokens).tokens

    def greedy_with_margins(self, prompt: str, max_tokens: int) -> GreedyReference:
        """Greedy token ids (EOS included when it ends the sequence) and, for each, its logit's lead over the
        runner-up: how close that choice came to flipping."""
        ids = self.encode(prompt)
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(ids) + max_tokens, do_sample=False)
        generator = og.Generator(self.model, params)
        generator.append_tokens(np.asarray(ids, dtype=np.int32))
        out: list[int] = []
        margins: list[float] = []
        while not generator.is_done() and len(out) < max_tokens:
            logits = np.asarray(generator.get_logits(), dtype=np.float32).reshape(-1)
            top2 = np.partition(logits, -2)[-2:]
            margins.append(float(top2[1] - top2[0]))
            generator.generate_next_token()
            out.append(int(generator.get_next_tokens()[0]))
        return GreedyReference(out, margins, self.decode, self.row_tolerance)
