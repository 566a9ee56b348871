"""The model's vocabulary as bytes: token text for logprobs, /tokenize and /detokenize, and guided decoding.

Read from the folder's tokenizer.json. ONNX Runtime GenAI's tokenizer still does the prompts the model sees; this
one gives what it cannot: the raw bytes of any token, encoding with or without special tokens, and the llguidance
tokenizer that turns a grammar into a per-step token mask. Both tokenizers are built the first time a request needs
them: most requests need neither, and they hold more memory than anything but the weights and the KV cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

import llguidance
from tokenizers import Tokenizer

logger = logging.getLogger(__name__)


class Vocabulary:
    def __init__(self, tokenizer_file: Path, vocab_size: int, eos_token_ids: Iterable[int]) -> None:
        self.size = vocab_size
        self._tokenizer_file = tokenizer_file
        self._eos_token_ids = sorted(eos_token_ids)
        self._guidance_tokenizer: llguidance.LLTokenizer | None = None
        self._guidance_lock = threading.Lock()

    @property
    def guidance_tokenizer(self) -> llguidance.LLTokenizer:
        """Built on first use (a grammar, tools, logprobs, token strings): built at load, it added 60 MB to the
        loaded RSS on SmolLM2 and 147 MB on Qwen2.5, and it takes 0.3 s and 1.2–1.7 s (docs/ENGINE_DESIGNS.md,
        Memory). Callers that arrive while it is being built wait for that one build; serving builds it off the
        event loop (`load_guidance_tokenizer` in a thread) before a request that needs it starts streaming."""
        tokenizer = self._guidance_tokenizer
        if tokenizer is None:
            with self._guidance_lock:
                if self._guidance_tokenizer is None:
                    self._guidance_tokenizer = self._build_guidance_tokenizer()
                tokenizer = self._guidance_tokenizer
        return tokenizer

    def load_guidance_tokenizer(self) -> None:
        """Build llguidance's tokenizer now if it is not yet (blocking: run it in a thread from async code)."""
        _ = self.guidance_tokenizer

    def _build_guidance_tokenizer(self) -> llguidance.LLTokenizer:
        start = time.perf_counter()
        text = self._tokenizer_file.read_text(encoding="utf-8")
        # n_vocab is the model's logits width, which may exceed the tokenizer's (Phi-3.5: 32064 against 32011);
        # the tokens past the tokenizer's end are never allowed by a grammar.
        tokenizer = llguidance.LLTokenizer(text, n_vocab=self.size, eos_token=self._eos_token_ids)
        logger.info(
            "llguidance tokenizer of %d tokens from %s built in %.2f s",
            self.size,
            self._tokenizer_file,
            time.perf_counter() - start,
        )
        return tokenizer

    def token_bytes(self, token_id: int) -> bytes:
        """The token's own bytes (a special token gives its name); concatenated, they are the UTF-8 text."""
        return self.guidance_tokenizer.decode_bytes([token_id])

    def token_text(self, token_id: int) -> str:
        """The token alone as text; half a UTF-8 character shows as U+FFFD."""
        return self.token_bytes(token_id).decode("utf-8", errors="replace")

    @cached_property
    def hf(self) -> Tokenizer:
        """Built on first use: only /tokenize and /detokenize need it, and it holds 140 MB for Qwen2.5's vocabulary
        (measured), more than the prompts' tokenizer and llguidance's together."""
        return Tokenizer.from_file(str(self._tokenizer_file))

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return self.hf.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int]) -> str:
        """Special tokens stay in the text, so a tokenized chat prompt detokenizes back to itself."""
        return self.hf.decode(list(ids), skip_special_tokens=False)
