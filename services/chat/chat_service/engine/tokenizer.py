"""The model's tokenizer and chat template, an object of its own: what serving needs to build prompts and read
tokens, apart from whatever runs the weights."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime_genai as og

from chat_service.engine.template import find_template_override, messages_json, template_renders_tools
from chat_service.engine.vocabulary import Vocabulary


class ModelTokenizer:
    """ONNX Runtime GenAI's tokenizer for the folder, with the folder's chat template (or our override of it)."""

    def __init__(self, source: og.Model | og.Config, model_path: Path, vocab_size: int) -> None:
        self._tokenizer = og.Tokenizer(source)
        self.vocab_size = vocab_size
        self.eos_token_ids = frozenset(int(t) for t in self._tokenizer.eos_token_ids)
        self.vocabulary: Vocabulary | None = Vocabulary(model_path / "tokenizer.json", vocab_size, self.eos_token_ids)
        self._template_override = find_template_override(model_path)
        self.template_renders_tools = template_renders_tools(model_path, self._template_override)

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self._tokenizer.encode(text)]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(np.asarray(ids, dtype=np.int32))

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        """`tools` reach the template only when it renders them (see `template_renders_tools`)."""
        return self._tokenizer.apply_chat_template(
            messages_json(messages),
            template_str=self._template_override,
            tools=messages_json(tools) if tools else None,
            add_generation_prompt=add_generation_prompt,
        )
