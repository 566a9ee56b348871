"""Continuous batching: requests join the running batch at the next step and leave it the step they finish.

One thread owns the decoder. Each turn it prefills up to `prefills_per_step` arrivals (one prompt per call, into
free slots, first come first served within a priority), then advances every active row by one token in a single
batched call.

Queued `interactive` requests take free slots before queued `batch` ones, and batch rows never take the last
`interactive_reserved_slots` slots (engine/waiting.py). An interactive request that arrives while batch rows fill every
other slot so waits for the turn under way (a decode step, or one prefill or prompt chunk) and its own prefill,
where without the reserve it would wait for a batch row to finish: up to a whole batch answer.

One arrival per turn (the default) staggers the rows' starts, so they finish, and their clients come back, at
different steps: under steady load an arrival waits behind the one before it at most, where admitting a burst whole
keeps the rows in lockstep and every later wave arrives as a burst again (measured: TTFT p50 at 8 concurrent clients
174 vs 382 ms, same aggregate, short prompts). Running rows stall for one prefill at most.

When a row finishes while others decode, the next step waits up to `refill_wait_s` for a request to take the freed
slot. A client that sends its next request as soon as the last one ends (an agent loop, a load test) then gets its
prefill at once. Without the wait, its request lands just after the next step started and queues behind the next
one to arrive; as rows that started a step apart also finish a step apart, every later arrival then waits a whole
prefill more (measured at 8 closed-loop clients: TTFT p50 2.19× the lone stream's without, 1.03× with 10 ms; the
same aggregate).

A prompt longer than one prefill chunk goes in a chunk per turn, so the rows decoding meanwhile and later arrivals
wait for one chunk, not for the whole prompt. A prompt that starts with blocks the prefix cache holds (a shared
system prompt, an earlier turn) gets their KV copied into its slot and prefills only the rest. Sampling, stop
conditions and detokenization stay per request.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.batched.prefix_cache import PrefixCache
from chat_service.engine.batched.rows import BatchRow
from chat_service.engine.batched.scheduler_stats import scheduler_stats
from chat_service.engine.batched.slots import SlotTable
from chat_service.engine.batched.speculation import SpeculationCounts, rows_verify, verify_row, wants_speculation
from chat_service.engine.config import EngineConfig
from chat_service.engine.detokenizer import IncrementalDetokenizer
from chat_service.engine.guidance import GuidanceError
from chat_service.engine.protocol import Tokenizer
from chat_service.engine.sampler import TokenSampler
from chat_service.engine.thread_events import Emit, deliver
from chat_service.engine.types import EngineClosedError, EngineStats, GenerationRequest
from chat_service.engine.waiting import WaitingRows

logger = logging.getLogger(__name__)

# A prefill call takes at most this many tokens. Not for the logits any more (the decoder computes the last positions'
# only, gathered_logits.py) but for the rest of a call's activations, which grow with its length, and for the rows
# decoding meanwhile, which wait one chunk: a 2,000-token prompt on Qwen2.5-Coder-0.5B in one call peaked 390 MB over
# the resting RSS against 115 MB in 512-token chunks, for the same time to its first token (docs/ENGINE_DESIGNS.md).
PREFILL_TOKENS = 512


class BatchScheduler:
    def __init__(
        self,
        decoder: OnnxDecoder,
        tokenizer: Tokenizer,
        prefix_cache: PrefixCache,
        config: EngineConfig,
        end_marker: object,
    ) -> None:
        self._decoder = decoder
        self._prefix = prefix_cache
        self._tokenizer = tokenizer  # detokenizing, end-of-sequence, and each row's grammar matcher
        self._config = config
        self._end = end_marker
        self._slot_freed = False  # a row left the batch in the last turn
        self._table: SlotTable[BatchRow] = SlotTable(decoder.cache.slots, decoder.cache.move)
        self._pending: WaitingRows[BatchRow] = WaitingRows()
        # Batch rows never take these slots; batch requests always keep one slot, whatever the setting asks.
        self.reserved = max(0, min(config.interactive_reserved_slots, decoder.cache.slots - 1))
        self._outbox: list[tuple[Emit, Any]] = []  # this step's events, handed over together (see _flush)
        self._wakeup = threading.Condition()
        self._stopping = False
        self.steps = 0  # decode calls so far (written by the scheduler thread only)
        self.speculation = SpeculationCounts()
        self._thread = threading.Thread(target=self._loop, name="batch-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, request: GenerationRequest, emit: Emit, cancelled: threading.Event) -> None:
        row = BatchRow(
            request,
            emit,
            cancelled,
            TokenSampler(request.sampling, self._tokenizer.vocab_size, self._tokenizer.vocabulary, request.prompt_ids),
            IncrementalDetokenizer(self._tokenizer.decode),
            speculates=wants_speculation(request, self._config),
        )
        with self._wakeup:
            if not self._stopping:
                self._pending.append(row)
                self._wakeup.notify()
                return
        deliver([(emit, EngineClosedError("the model was unloaded before this generation started")), (emit, self._end)])

    def stop(self) -> None:
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=30)

    @property
    def active(self) -> int:
        return self._table.active

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def stats(self) -> EngineStats:
        """Read from another thread while this one runs (see scheduler_stats)."""
        return scheduler_stats(
            self._table, self._pending, self._decoder.cache, self._prefix, self.steps, self.speculation
        )

    # The scheduler thread -----------------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._serve()
        finally:  # stopped, or the thread itself is going down: nobody may be left waiting
            with self._wakeup:
                self._stopping = True  # later submits are refused at once
                pending = self._pending.clear()
            for row in [*self._table.clear(), *pending]:
                self._finish(row, EngineClosedError("the model was unloaded while this generation was running"))
            self._flush()

    def _serve(self) -> None:
        while True:
            with self._wakeup:
                if not self._stopping and not self._pending and not self.active:
                    self._decoder.cache.reset()  # idle: give back what long requests made the slots grow to
                while not self._stopping and not self._pending and not self.active:
                    self._wakeup.wait()
                if self._stopping:
                    break
                idle = not self.active
                freed, self._slot_freed = self._slot_freed, False
                if freed and not idle and not self._pending and self._config.refill_wait_s > 0:
                    self._wakeup.wait(self._config.refill_wait_s)  # submit() and stop() end it early
            if idle and self._config.batch_wait_s > 0:
                time.sleep(self._config.batch_wait_s)  # an idle engine may gather a few arrivals into one prefill
            try:
                self._admit()
                self._prefill_chunk()
                if self._table.rows:
                    self._step()
            except Exception as exc:  # a failed step fails its requests; the engine goes on with the next ones
                logger.exception("batch step failed; failing its %d request(s)", self.active)
                for row in self._table.clear():
                    self._finish(row, exc)
            finally:
                self._flush()

    def _flush(self) -> None:
        if self._outbox:
            outbox, self._outbox = self._outbox, []
            deliver(outbox)

    def _admit(self) -> None:
        table = self._table
        batch_held = sum(row.is_batch for row in table.rows) + (table.staged is not None and table.staged.is_batch)
        with self._wakeup:
            batch_free = table.slots - self.reserved - batch_held
            new = self._pending.take(self._config.prefills_per_step, table.free, batch_free)
        for row in new:
            if row.cancelled.is_set():  # gave up while waiting: never takes a slot
                self._finish(row, None)
        new = [row for row in new if not row.done]
        long = [row for row in new if len(row.request.prompt_ids) > PREFILL_TOKENS]
        new = [row for row in new if len(row.request.prompt_ids) <= PREFILL_TOKENS]
        if long and self._table.staged is None:
            # The last slot: short arrivals take the slots after the decoding rows meanwhile, without moving it.
            staged = long.pop(0)
            slot = self._table.stage(staged)
            self._decoder.cache.ensure(len(staged.request.prompt_ids), self._table.used())
            staged.length = staged.cached_tokens = self._prefix.load(
                staged.request.prompt_ids, slot, staged.request.cache_scope
            )
        if long:  # one staged prompt at a time; the others keep their place at the head of the queue
            with self._wakeup:
                self._pending.put_back(long)
        if not new:
            return
        self._decoder.cache.ensure(max(len(row.request.prompt_ids) for row in new), self._table.used())
        # Shortest prompt first among those admitted together: prefill time grows with the prompt, so this minimises
        # their mean wait for the first token.
        new.sort(key=lambda row: len(row.request.prompt_ids))
        # One prompt per call, each row's first token sent as soon as its own prefill ends: on a CPU a batched
        # prefill costs what the separate ones do, but would hold every first token until the last prompt is done.
        for row in new:
            slot, prompt = self._table.add(row), row.request.prompt_ids
            row.cached_tokens = self._prefix.load(prompt, slot, row.request.cache_scope)
            if row.cached_tokens:
                logits = self._decoder.extend(slot, prompt[row.cached_tokens :], cached=row.cached_tokens)
            else:
                logits = self._decoder.prefill([prompt], slot)[0]
            row.length = len(prompt)
            self._prefix.store(prompt, slot, row.length, row.request.cache_scope)
            self._advance(row, logits)
            self._flush()  # this row's first token goes out now, not after the other arrivals' prefills
        self._drop_finished()
        self._flush()

    def _prefill_chunk(self) -> None:
        """The staged prompt's next PREFILL_TOKENS (bounded activations); after the last, it joins the batch."""
        row = self._table.staged
        if row is None:
            return
        if row.cancelled.is_set():
            self._table.unstage()
            self._finish(row, None)
            return
        prompt, slot = row.request.prompt_ids, self._table.staged_slot
        logits = self._decoder.extend(slot, prompt[row.length : row.length + PREFILL_TOKENS], cached=row.length)
        row.length = min(len(prompt), row.length + PREFILL_TOKENS)
        if row.length < len(prompt):
            return
        self._prefix.store(prompt, slot, row.length, row.request.cache_scope)
        self._table.join_staged()
        self._advance(row, logits)
        self._flush()

    def _step(self) -> None:
        self._drop_finished()
        rows = self._table.rows
        if not rows:
            return
        if rows_verify(rows, self._decoder.cache.max_len, self._config, self.speculation):
            # Several new tokens over a past run at batch 1 only: each row verifies its drafts in a call of its own.
            for slot, row in enumerate(rows):
                verify_row(row, slot, self._decoder, self._config, self._advance, self._table.used, self.speculation)
            self._drop_finished()
            return
        tokens, lengths = [row.next_token for row in rows], [row.length for row in rows]
        if self._config.batch_invariant and len(rows) == 1:
            # The scratch row runs in slot 1 at the position slot 1 writes next (0 when free; a staged prompt's next
            # chunk overwrites it), so its KV write disturbs nothing; its logits are dropped.
            tokens.append(tokens[0])
            lengths.append(self._table.used()[1])
        self._decoder.cache.ensure(max(lengths) + 1, self._table.used())
        logits = self._decoder.decode(tokens, lengths)
        self.steps += 1
        for row, row_logits in zip(rows, logits[: len(rows)], strict=True):
            row.fed.append(row.next_token)
            row.length += 1
            self._advance(row, row_logits)
        self._drop_finished()

    def _advance(self, row: BatchRow, logits: np.ndarray) -> None:
        """Sample this row's next token and tell its client; mark it done on EOS, max_tokens or cancellation."""
        if row.cancelled.is_set():
            self._finish(row, None)
            return
        try:
            token = row.sampler.sample(logits)
        except GuidanceError as exc:  # this row's grammar failed: fail this request only, not the whole batch
            self._finish(row, exc)
            return
        event = row.token_event(token, self._tokenizer.eos_token_ids)
        self._outbox.append((row.emit, event))
        if event.finish_reason is not None:
            self._finish(row, None)

    def _finish(self, row: BatchRow, error: BaseException | None) -> None:
        if not row.done:
            row.done = True
            if error is not None:
                self._outbox.append((row.emit, error))
            self._outbox.append((row.emit, self._end))

    def _keep_reply(self, row: BatchRow, slot: int) -> None:
        # The next turn of a conversation (or a chain of responses) starts with this prompt and this reply.
        if self._config.cache_replies and row.fed and not row.cancelled.is_set():
            self._prefix.store([*row.request.prompt_ids, *row.fed], slot, row.length, row.request.cache_scope)

    def _drop_finished(self) -> None:
        for row in self._table.remove(lambda row: row.done or row.cancelled.is_set(), before_free=self._keep_reply):
            self._finish(row, None)
            self._slot_freed = True
