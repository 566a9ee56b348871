"""Priorities in the engines, on the real SmolLM2 model, with the decode steps held until the test lets each run
(held_steps.py), so which request is admitted in which scheduler turn is decided by the test, never by the clock:
queued interactive requests take a free KV slot before queued batch ones, batch rows never take the slots reserved
for interactive ones (so an interactive arrival is prefilled in the next turn however many batch rows wait), and the
generator engine starts its queued generations in the same order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.config import EngineConfig
from chat_service.engine.generator import GeneratorEngine
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.protocol import ChatEngine
from chat_service.engine.types import GenerationRequest, SamplingParams
from held_steps import HeldSteps
from ortserve_common.priority import Priority
from ortserve_testing.numerics import assert_greedy_agrees
from ortserve_testing.plain_engine import PlainGenerator
from ortserve_testing.waiting import DEADLINE_S, eventually

BATCH_TOKENS = 48  # more than any test lets run before it opens the gate: no batch row ends while the test looks
INTERACTIVE_PROMPT, INTERACTIVE_TOKENS = "The three primary colours are", 6


class Streams:
    """Requests consumed as the engine answers them, each by name; `firsts` is the order their first tokens came."""

    def __init__(self, engine: ChatEngine, plain: PlainGenerator) -> None:
        self.engine, self.plain = engine, plain
        self.tokens: dict[str, list[int]] = {}
        self.firsts: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, priority: Priority) -> None:
        if priority == "batch":  # a long answer: its end of sequence is banned so that it runs to max_tokens
            no_end = tuple((token, -100.0) for token in self.engine.tokenizer.eos_token_ids)
            prompt, max_tokens = self.plain.encode(f"Story {name}: Once upon a time,"), BATCH_TOKENS
            sampling = SamplingParams(temperature=0.0, logit_bias=no_end)
        else:
            prompt, max_tokens = self.plain.encode(INTERACTIVE_PROMPT), INTERACTIVE_TOKENS
            sampling = SamplingParams(temperature=0.0)
        request = GenerationRequest(prompt, max_tokens, sampling, priority=priority)

        async def consume() -> None:
            tokens = self.tokens.setdefault(name, [])
            async for event in self.engine.generate(request):
                if not tokens:
                    self.firsts.append(name)
                tokens.append(event.token_id)

        self._tasks.append(asyncio.create_task(consume(), name=name))

    async def waiting(self, rows: int, batch: int) -> None:
        """Until the engine has `rows` submitted and not yet in a slot, `batch` of them batch requests'."""
        await eventually(
            lambda: (self.engine.stats().rows_waiting, self.engine.stats().rows_waiting_batch) == (rows, batch),
            f"{rows} waiting, {batch} of them batch",
        )

    async def finish(self) -> None:
        await asyncio.wait_for(asyncio.gather(*self._tasks), DEADLINE_S)


def _batched(smollm_path: Path, slots: int, reserved: int) -> BatchedEngine:
    config = EngineConfig(threads=2, max_model_len=512, slots=slots, interactive_reserved_slots=reserved)
    return BatchedEngine(ModelFolder(smollm_path, config.max_model_len), config)


def _run_held(engine: BatchedEngine, held: HeldSteps, scenario: Callable[[], Awaitable[Streams]]) -> Streams:
    """Run a scenario whose steps the test holds; the steps are let go and the engine closed even when it fails."""
    try:
        return asyncio.run(scenario())
    finally:
        held.open()
        engine.close()


def test_a_queued_interactive_request_takes_the_free_slot_before_earlier_batch_ones(smollm_path, plain) -> None:
    engine = _batched(smollm_path, slots=2, reserved=0)  # no reserve: the order of the queue alone
    held = HeldSteps(engine)

    async def scenario() -> Streams:
        streams = Streams(engine, plain)
        streams.start("a", "batch")
        await held.held(1)  # a is in a slot; its first decode step is held
        streams.start("b", "batch")
        streams.start("c", "batch")
        await streams.waiting(2, 2)
        streams.start("i", "interactive")  # last to arrive, one slot free
        await streams.waiting(3, 2)
        await held.step()  # one turn: one arrival admitted (max_prefills_per_step 1)
        await eventually(lambda: len(streams.firsts) == 2, "the admitted arrival's first token")
        assert streams.firsts == ["a", "i"]
        await streams.waiting(2, 2)  # both batch requests still queued: no slot is free
        held.open()
        await streams.finish()
        return streams

    streams = _run_held(engine, held, scenario)
    assert streams.firsts == ["a", "i", "b", "c"]
    assert all(len(streams.tokens[name]) == BATCH_TOKENS for name in "abc")
    assert_greedy_agrees(streams.tokens["i"], plain.greedy_with_margins(INTERACTIVE_PROMPT, INTERACTIVE_TOKENS))


@pytest.mark.parametrize("reserved", [1, 0])
def test_a_reserved_slot_admits_an_interactive_arrival_in_the_next_turn_of_a_batch_flood(
    smollm_path, plain, reserved: int
) -> None:
    engine = _batched(smollm_path, slots=3, reserved=reserved)
    held = HeldSteps(engine)

    async def scenario() -> Streams:
        streams = Streams(engine, plain)
        streams.start("a", "batch")
        await held.held(1)
        streams.start("b", "batch")
        streams.start("c", "batch")
        await streams.waiting(2, 2)
        for _ in range(3):  # b is admitted next turn; c only where no slot is reserved, however many turns pass
            await held.step()
        stats = engine.stats()
        if reserved:
            assert (stats.rows_decoding, stats.kv_slots_used, stats.rows_waiting_batch) == (2, 2, 1)
        else:
            assert (stats.rows_decoding, stats.rows_waiting) == (3, 0)
        streams.start("i", "interactive")
        await streams.waiting(2 if reserved else 1, 1 if reserved else 0)
        await held.step()  # one turn
        stats = engine.stats()
        if reserved:  # prefilled into the reserved slot at once, while the batch request still waits
            await eventually(lambda: "i" in streams.firsts, "the interactive request's first token")
            assert (stats.rows_decoding, stats.rows_waiting, stats.rows_waiting_batch) == (3, 1, 1)
            assert "c" not in streams.firsts
        else:  # every slot holds a batch row: it waits for one of them to end
            assert (stats.rows_decoding, stats.rows_waiting, stats.rows_waiting_batch) == (3, 1, 0)
            assert "i" not in streams.firsts
        held.open()
        await streams.finish()
        return streams

    streams = _run_held(engine, held, scenario)
    assert streams.firsts == (["a", "b", "i", "c"] if reserved else ["a", "b", "c", "i"])
    assert_greedy_agrees(streams.tokens["i"], plain.greedy_with_margins(INTERACTIVE_PROMPT, INTERACTIVE_TOKENS))


def test_the_generator_engine_starts_a_queued_interactive_generation_before_earlier_batch_ones(
    smollm_path, plain
) -> None:
    config = EngineConfig(engine="generator", threads=2, max_model_len=512, workers=1)
    engine = GeneratorEngine(ModelFolder(smollm_path, config.max_model_len), config)
    release = threading.Event()
    generate = engine._loop

    def held_loop(*args) -> None:  # the one worker holds its first generation until the others are queued
        if not release.wait(DEADLINE_S):
            raise AssertionError("the generation was held past the deadline")
        generate(*args)

    engine._loop = held_loop

    async def scenario() -> Streams:
        streams = Streams(engine, plain)
        streams.start("a", "batch")
        await eventually(lambda: engine.stats().rows_decoding == 1, "a on the only worker")
        streams.start("b", "batch")
        streams.start("i", "interactive")
        await streams.waiting(2, 1)
        release.set()
        await streams.finish()
        return streams

    try:
        streams = asyncio.run(scenario())
    finally:
        release.set()
        engine.close()
    assert streams.firsts == ["a", "i", "b"]
    assert streams.tokens["i"] == plain.greedy(INTERACTIVE_PROMPT, INTERACTIVE_TOKENS)  # alone: exact
