"""Prompt-lookup (n-gram) speculation for a batched-engine row: drafts from the request's own prompt and output.

A code edit, an extraction or a quoted answer repeats long runs of its prompt: when the last few tokens appeared
before, the tokens that followed them then are a good guess for what follows now. The guesses are checked in one
`extend` over the row's KV (verify_row in the scheduler): position i's logits give the token that really follows,
sampled with the row's own sampler in order, and drafts are taken while they equal it. Nothing about the output
changes but how many model calls it takes; the KV of rejected drafts lies beyond the row's length and is written
over by the next call.

ONNX Runtime's CPU attention takes several new tokens over a past only at batch 1, so a speculating row runs in a
call of its own: the engine speculates only while at most `max_rows` rows decode (one by default: a second row's
own call costs more than its drafts save, docs/ENGINE_DESIGNS.md).

A speculating row checks at least one draft every step, so every one of its tokens comes from a call of two or
more new tokens (one attention path), never from the one-token decode path: its greedy output is then that of
the chunked path whatever was drafted or accepted, which the tests compare exactly.

A row drafts only where the lookup has shown it can guess: open chat with sampling takes ~8 % of drafts, and each
two-token call costs ~1.1-1.2x the one-token step it replaces (Qwen2.5-Coder, docs/ENGINE_DESIGNS.md). So a row
first decodes `prompt_lookup_probation` tokens one a step while each is scored against the lookup's first guess
for it; it then speculates only if that guess was right for GIVE_UP_BELOW of them or more, and gives up for the
rest of its reply as soon as the share falls below. Both decisions read only the tokens, so they fall after the
same tokens at any draft length: the reply is the one-token path's through the probation, the chunked path's
while it speculates, and the one-token path's after it gives up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.config import EngineConfig
from chat_service.engine.types import GenerationRequest

# Each request's drafts start at this many tokens, then follow what was accepted (AdaptiveDraftLength).
FIRST_DRAFT = 4
# A row gives up speculating once the lookup's first guess was right for under this share of its tokens, judged
# from the end of its probation on, or after this many tokens when it has none. Code edits run at 37-84 % (their
# preamble included); open chat with sampling at ~8 %.
GIVE_UP_AFTER = 16
GIVE_UP_BELOW = 0.15


class PromptLookupDrafter:
    """The tokens that followed the latest earlier occurrence of the sequence's last n tokens (n from `max_ngram`
    down to 1). An index from each n-gram to where it last ended keeps a lookup O(max_ngram) per token."""

    def __init__(self, tokens: Sequence[int], max_ngram: int = 3) -> None:
        self.max_ngram = max_ngram
        self._tokens: list[int] = []
        # _ends[n - 1][gram] = the position right after the latest occurrence of `gram` that is not the suffix.
        self._ends: list[dict[tuple[int, ...], int]] = [{} for _ in range(max_ngram)]
        for token in tokens:
            self.append(token)

    def __len__(self) -> int:
        return len(self._tokens)

    def append(self, token: int) -> None:
        end = len(self._tokens)
        # The n-grams that end here stop being the suffix: from now on they are earlier occurrences, followed by
        # the token appended now.
        for n in range(1, min(self.max_ngram, end) + 1):
            self._ends[n - 1][tuple(self._tokens[end - n : end])] = end
        self._tokens.append(token)

    def propose(self, count: int) -> list[int]:
        """Up to `count` tokens; at least one whenever the sequence is not empty: with no earlier match, the last
        token again (a speculating row always verifies one draft or more; see the module's note)."""
        end = len(self._tokens)
        if not end or count <= 0:
            return []
        for n in range(min(self.max_ngram, end), 0, -1):
            start = self._ends[n - 1].get(tuple(self._tokens[end - n : end]))
            if start is not None:
                return self._tokens[start : start + count]
        return [self._tokens[-1]]


class AdaptiveDraftLength:
    """How many tokens to draft next: longer after a draft was taken whole, back to what was accepted plus one
    after one was cut short, so a row that repeats its prompt drafts far ahead and one that does not drafts one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.length = min(FIRST_DRAFT, limit)

    def update(self, drafted: int, accepted: int) -> None:
        if accepted >= drafted:
            self.length = min(self.limit, self.length + 2)
        else:
            self.length = max(1, min(self.limit, accepted + 1))


@dataclass
class SpeculationCounts:
    """Since the engine started; read by stats() from another thread (plain ints: each read is whole)."""

    verify_calls: int = 0
    drafted: int = 0
    accepted: int = 0
    given_up: int = 0  # rows that stopped speculating, or never started (SpeculationState.given_up)


class SpeculationState:
    """One row's drafter, draft length and counts."""

    def __init__(
        self,
        tokens: Sequence[int],
        limit: int,
        max_ngram: int,
        probation: int,
        counts: SpeculationCounts | None = None,
    ) -> None:
        self.drafter = PromptLookupDrafter(tokens, max_ngram)
        self.length = AdaptiveDraftLength(limit)
        self.probation = probation  # tokens decoded one a step, scored, before the first draft
        self._judged_from = probation or GIVE_UP_AFTER  # tokens observed before the row may give up
        self.observed = 0  # tokens since the row first decoded alone
        self.guessed = 0  # of those, the ones the lookup's first draft would have been
        self.given_up = False
        self._counts = counts

    @property
    def on_probation(self) -> bool:
        """Still scoring the lookup's guesses before its first draft."""
        return not self.given_up and self.observed < self.probation

    def append(self, token: int) -> None:
        """The row's next token: scored against the lookup's first guess, then added to what it drafts from. Once
        the row has given up it drafts no more, so nothing is scored or indexed."""
        if self.given_up:
            return
        self.observed += 1
        self.guessed += self.drafter.propose(1) == [token]
        self.drafter.append(token)
        if self.observed >= self._judged_from and self.guessed < GIVE_UP_BELOW * self.observed:
            self.given_up = True
            if self._counts is not None:
                self._counts.given_up += 1

    def draft(self, room: int) -> list[int]:
        """Drafts for the next verify call, at most `room` (what is left of max_tokens and of the KV slot)."""
        return self.drafter.propose(min(self.length.length, room))


class SpeculatingRow(Protocol):
    """What rows_verify and verify_row need of the scheduler's row."""

    request: GenerationRequest
    length: int
    generated: int
    next_token: int
    fed: list[int]
    done: bool
    speculates: bool
    speculation: SpeculationState | None


Row = TypeVar("Row", bound=SpeculatingRow)


def _limit(request: GenerationRequest, config: EngineConfig) -> int:
    """Drafts per call at most: the request's own count, else the server's when it speculates by default, else 0."""
    if request.speculative_tokens is not None:
        return request.speculative_tokens
    return config.prompt_lookup_tokens if config.prompt_lookup else 0


def wants_speculation(request: GenerationRequest, config: EngineConfig) -> bool:
    """Whether a row may speculate: drafts asked for (the request's own count, else the server's), and no grammar
    (a draft that breaks it would be cut at once; the grammar's mask per position is not what costs here). Not in
    batch-invariant mode: a lone row there must take the several-row decode path, as it does in company."""
    return _limit(request, config) > 0 and request.sampling.guidance is None and not config.batch_invariant


def rows_verify(rows: Sequence[SpeculatingRow], room: int, config: EngineConfig, counts: SpeculationCounts) -> bool:
    """Whether this step verifies drafts, a call per row: at most `prompt_lookup_max_rows` rows decode, every one may
    speculate, has room for a draft in its slot (`room` positions) and is past its probation. A row's scoring
    starts here, the first time it decodes alone (rows that never do never pay for the index)."""
    if len(rows) > config.prompt_lookup_max_rows or not all(row.speculates and row.length + 2 <= room for row in rows):
        return False
    for row in rows:
        if row.speculation is None:
            tokens = [*row.request.prompt_ids, *row.fed, row.next_token]
            limit, ngram, probation = (
                _limit(row.request, config),
                config.prompt_lookup_ngram,
                config.prompt_lookup_probation,
            )
            row.speculation = SpeculationState(tokens, limit, ngram, probation, counts)
    return not any(row.speculation.on_probation for row in rows if row.speculation is not None)


def verify_row(
    row: Row,
    slot: int,
    decoder: OnnxDecoder,
    config: EngineConfig,
    advance: Callable[[Row, np.ndarray], None],
    used: Callable[[], list[int]],
    counts: SpeculationCounts,
) -> None:
    """One step of a lone row by speculation: its pending token and the drafts in one verify call, then each
    position's logits to `advance` (the row's own sampler, in order) while the token drawn equals the draft.
    The slot must have room for the pending token and one draft at least."""
    room = decoder.cache.max_len - row.length - 1
    request = row.request
    state = row.speculation
    assert state is not None and not state.on_probation
    # Never more drafts than tokens still to come; but one at least, so this row stays on one attention path.
    drafts = state.draft(min(room, max(1, request.max_tokens - row.generated - 1)))
    tokens = [row.next_token, *drafts]
    decoder.cache.ensure(row.length + len(tokens), used())
    logits = decoder.verify(slot, tokens, row.length)
    accepted = 0
    row.fed.append(row.next_token)
    row.length += 1
    advance(row, logits[0])
    for position, draft in enumerate(drafts, start=1):
        if row.done or row.next_token != draft or state.given_up:
            break
        # The draft is what the sampler drew: its KV (written by this call) is the row's, and so are the logits
        # after it. Those past the first mismatch lie beyond row.length, to be written over.
        row.fed.append(draft)
        row.length += 1
        accepted += 1
        advance(row, logits[position])
    state.length.update(len(drafts), accepted)
    counts.verify_calls += 1
    counts.drafted += len(drafts)
    counts.accepted += accepted
