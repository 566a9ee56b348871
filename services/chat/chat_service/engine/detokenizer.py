"""Incremental detokenization that never splits a UTF-8 character.

Byte-level BPE emits characters across several tokens; decoding a token alone would show U+FFFD halves. We decode
a short window (from the last clean boundary) and emit only text that has stopped changing, as TGI and vLLM do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0  # window start: a token boundary that decodes cleanly
        self._read = 0  # tokens whose text has been emitted

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        window = self._ids[self._prefix :]
        prefix_text = self._decode(self._ids[self._prefix : self._read]) if self._read > self._prefix else ""
        text = self._decode(window)
        if len(text) > len(prefix_text) and not text.endswith(REPLACEMENT):
            delta = text[len(prefix_text) :]
            self._prefix, self._read = self._read, len(self._ids)
            return delta
        return ""

    def flush(self) -> str:
        """Text still held back at the end (an incomplete character decodes as U+FFFD, like a full decode would)."""
        if self._read >= len(self._ids):
            return ""
        prefix_text = self._decode(self._ids[self._prefix : self._read]) if self._read > self._prefix else ""
        text = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return text[len(prefix_text) :]
