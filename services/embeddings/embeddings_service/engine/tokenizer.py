"""The model's tokenizer (HF `tokenizers`, the same ids ONNX Runtime GenAI produces), with tail truncation that
keeps the special tokens and the text's head (and so any prefix) intact."""

from __future__ import annotations

import threading
from pathlib import Path

from tokenizers import Tokenizer

from embeddings_service.engine.types import EncodedInput


class ModelTokenizer:
    def __init__(self, tokenizer_file: Path, max_length: int, vocab_size: int | None = None) -> None:
        self.max_length = max_length
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        # Some tokenizer.json files ship with truncation and fixed padding switched on (MiniLM's: 128); lengths and
        # limits are ours to enforce, so both are switched off here.
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.vocab_size = vocab_size or self._tokenizer.get_vocab_size(with_added_tokens=True)
        self.leading, self.trailing = self._special_template()
        pair = self._tokenizer.encode("a", "b")
        content = (
            self._tokenizer.encode("a", add_special_tokens=False).ids
            + self._tokenizer.encode("b", add_special_tokens=False).ids
        )
        self.pair_special_count = len(pair.ids) - len(content)
        # A second instance for truncated pairs, because truncation is tokenizer state and encoding runs on many
        # threads. Made on first use: only cross-encoders need it, and a 250k-piece Unigram costs ~280 MB each.
        self._pair_truncating: Tokenizer | None = None
        self._pair_lock = threading.Lock()

    def _special_template(self) -> tuple[list[int], list[int]]:
        """The tokens the post-processor puts before and after a single text ([CLS] / [SEP] for BERT, none for
        SmolLM2), found by encoding a probe with and without them."""
        plain = self._tokenizer.encode("a", add_special_tokens=False).ids
        full = self._tokenizer.encode("a").ids
        for start in range(len(full) - len(plain) + 1):
            if full[start : start + len(plain)] == plain:
                return full[:start], full[start + len(plain) :]
        return [], []

    @property
    def special_count(self) -> int:
        return len(self.leading) + len(self.trailing)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Ids with the model's special tokens, untruncated (callers decide what an over-long input means)."""
        return [e.ids for e in self._tokenizer.encode_batch(texts)]

    def count_plain(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def truncate(self, ids: list[int]) -> list[int]:
        """Cut the tail of the content; leading/trailing special tokens, when `ids` carry them, are kept."""
        if len(ids) <= self.max_length:
            return ids
        lead = self.leading if ids[: len(self.leading)] == self.leading else []
        trail = self.trailing if self.trailing and ids[-len(self.trailing) :] == self.trailing else []
        keep = self.max_length - len(lead) - len(trail)
        return lead + ids[len(lead) : len(lead) + keep] + trail

    def encode_pairs(self, query: str, documents: list[str]) -> list[EncodedInput]:
        """Cross-encoder inputs, [CLS] query [SEP] document [SEP] with segment ids; untruncated."""
        encodings = self._tokenizer.encode_batch([(query, doc) for doc in documents])
        return [EncodedInput(e.ids, e.type_ids) for e in encodings]

    def encode_pair_truncated(self, query: str, document: str) -> EncodedInput:
        """The pair cut to `max_length` by dropping the document's tail; the query is kept whole."""
        with self._pair_lock:
            if self._pair_truncating is None:
                self._pair_truncating = Tokenizer.from_str(self._tokenizer.to_str())
                self._pair_truncating.enable_truncation(self.max_length, strategy="only_second", direction="right")
        encoding = self._pair_truncating.encode(query, document)
        return EncodedInput(encoding.ids, encoding.type_ids)
