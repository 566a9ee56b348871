"""Per-token logprobs, kept aligned with the text the client actually receives, and their wire formats.

Each token carries the text it completed (the detokenizer's delta, empty while a UTF-8 character is still partial),
so the tokens' texts joined are the content, and their bytes joined are its UTF-8. Stop strings hold text back and
may cut it: a token is released once all of its text has been sent, and a token cut by a stop string keeps only
the part before it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from ortserve_common.protocol.chat import TokenLogprob, TopLogprob
from ortserve_common.protocol.completions import CompletionLogprobs

from chat_service.engine.types import TokenLogprobs
from chat_service.engine.vocabulary import Vocabulary


@dataclass
class GeneratedToken:
    token_id: int
    text: str  # the part of the content this token stands for
    logprobs: TokenLogprobs
    cut: bool = False  # trimmed by a stop string: its bytes are then those of `text`


class TokenAligner:
    """Holds tokens until the stop-string matcher has released their text."""

    def __init__(self) -> None:
        self._pending: deque[tuple[int, GeneratedToken]] = deque()  # (start offset in the text fed, token)
        self._fed = 0

    def add(self, token_id: int, text: str, logprobs: TokenLogprobs) -> None:
        self._pending.append((self._fed, GeneratedToken(token_id, text, logprobs)))
        self._fed += len(text)

    def release(self, emitted: int, cut: bool = False) -> list[GeneratedToken]:
        """Tokens whose text lies within the first `emitted` characters; `cut`: nothing after that ever comes."""
        out = []
        while self._pending and self._pending[0][0] + len(self._pending[0][1].text) <= emitted:
            out.append(self._pending.popleft()[1])
        if cut:
            if self._pending and self._pending[0][0] < emitted:
                start, token = self._pending[0]
                out.append(GeneratedToken(token.token_id, token.text[: emitted - start], token.logprobs, cut=True))
            self._pending.clear()
        return out


async def load_token_bytes(vocabulary: Vocabulary | None) -> None:
    """Before a request with logprobs streams: token bytes come from llguidance's tokenizer, built on first use
    (about a second for a 150k vocabulary), so the first such request builds it here, in a thread, rather than on the
    event loop while other streams wait for their next chunk."""
    if vocabulary is not None:
        await asyncio.to_thread(vocabulary.load_guidance_tokenizer)


def _bytes(vocabulary: Vocabulary, token: GeneratedToken) -> list[int]:
    return list(token.text.encode("utf-8") if token.cut else vocabulary.token_bytes(token.token_id))


def chat_logprobs(tokens: list[GeneratedToken], vocabulary: Vocabulary) -> list[TokenLogprob]:
    return [
        TokenLogprob(
            token=token.text,
            logprob=token.logprobs.logprob,
            bytes=_bytes(vocabulary, token),
            top_logprobs=[
                TopLogprob(token=vocabulary.token_text(t), logprob=lp, bytes=list(vocabulary.token_bytes(t)))
                for t, lp in token.logprobs.top
            ],
        )
        for token in tokens
    ]


def completion_logprobs(tokens: list[GeneratedToken], vocabulary: Vocabulary, offset: int) -> CompletionLogprobs:
    """The legacy layout; `offset` is where these tokens start in the choice's text (text_offset counts from 0)."""
    result = CompletionLogprobs()
    for token in tokens:
        result.tokens.append(token.text)
        result.token_logprobs.append(token.logprobs.logprob)
        result.top_logprobs.append({vocabulary.token_text(t): lp for t, lp in token.logprobs.top})
        result.text_offset.append(offset)
        offset += len(token.text)
    return result
