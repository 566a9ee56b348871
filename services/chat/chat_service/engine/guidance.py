"""Guided decoding: a grammar (JSON schema, regex or Lark) becomes a mask of the tokens allowed at each step.

llguidance does the parsing; the mask is applied by our own sampler to the raw logits, so guidance works with any
engine that hands the sampler one logits row per step (ONNX Runtime GenAI's own `set_guidance` only constrains its
`generate_next_token`, which we do not use).
"""

from __future__ import annotations

import json
from dataclasses import replace

import llguidance
import numpy as np

from chat_service.engine.types import GuidanceSpec
from chat_service.engine.vocabulary import Vocabulary

# Guided JSON is written compactly, `{"a": 1, "b": [2, 3]}`: a small model left free to choose whitespace tends to
# drift into endless newlines and indentation, and compact output is fewer tokens.
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class GuidanceError(ValueError):
    """The grammar is invalid or uses what llguidance does not support; the message says where."""


def compile_grammar(spec: GuidanceSpec) -> str:
    """The llguidance grammar for a spec (no validation: see `check_guidance`)."""
    if spec.grammar is not None:
        return spec.grammar
    if spec.kind == "json_schema":
        try:
            # llguidance's stub types `overrides` as a dict of str; the layout's separators are a list, as it documents.
            return llguidance.LLMatcher.grammar_from_json_schema(spec.source, overrides=JSON_LAYOUT)  # type: ignore[arg-type]
        except ValueError as exc:
            raise GuidanceError(str(exc)) from exc
    if spec.kind == "regex":
        return llguidance.LLMatcher.grammar_from_regex(spec.source)
    return llguidance.LLMatcher.grammar_from_lark(spec.source)


def check_guidance(spec: GuidanceSpec, vocabulary: Vocabulary | None) -> GuidanceSpec:
    """The spec with its grammar compiled, or GuidanceError if it cannot guide generation (run before a stream
    starts, to answer 400). Generation builds its matchers from that grammar, without compiling it again."""
    if spec.kind == "json_schema":
        try:
            schema = json.loads(spec.source)
        except ValueError as exc:
            raise GuidanceError(f"the schema is not JSON: {exc}") from exc
        if not isinstance(schema, dict | bool):
            raise GuidanceError("a JSON schema must be an object")
    tokenizer = vocabulary.guidance_tokenizer if vocabulary is not None else None
    grammar = compile_grammar(spec)
    message = llguidance.LLMatcher.validate_grammar(grammar, tokenizer)
    if message and not message.startswith("WARNING"):
        raise GuidanceError(message.strip())
    return replace(spec, grammar=grammar)


class GuidanceMatcher:
    """One generation's grammar state: which tokens may come next, and the tokens consumed so far."""

    def __init__(self, spec: GuidanceSpec, vocabulary: Vocabulary) -> None:
        self._vocab_size = vocabulary.size
        self._matcher = llguidance.LLMatcher(vocabulary.guidance_tokenizer, compile_grammar(spec), log_level=0)
        if self._matcher.is_error():
            raise GuidanceError(self._matcher.get_error())
        self._bitmask = np.zeros((vocabulary.size + 31) // 32, dtype=np.int32)

    def allowed(self) -> np.ndarray:
        """Boolean mask over the vocabulary of the tokens the grammar allows next (EOS once it is complete)."""
        # Writes straight into our buffer and releases the GIL while it works.
        self._matcher.unsafe_compute_mask_ptr(self._bitmask.ctypes.data, self._bitmask.nbytes)
        if self._matcher.is_error():
            raise GuidanceError(f"guided decoding failed: {self._matcher.get_error()}")
        bits = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little")
        return bits[: self._vocab_size].astype(bool)

    def accept(self, token_id: int) -> None:
        if not self._matcher.consume_token(token_id):
            raise GuidanceError(f"guided decoding failed on token {token_id}: {self._matcher.get_error()}")
