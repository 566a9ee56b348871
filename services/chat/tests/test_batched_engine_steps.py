"""The batched engine in-process: a decode step reuses its binding and logits buffer, so a batch that changes size
and KV slots that grow mid-decode must still give the plain engine's greedy tokens; a step's events reach the event
loop together, in order; arrivals are prefilled one per decode step unless told to take a burst at once; a request
sent as another ends takes the freed slot before the next step."""

from __future__ import annotations

import asyncio
import threading

import pytest
from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.batched.kv_cache import INITIAL_LEN
from chat_service.engine.batched.scheduler import PREFILL_TOKENS
from chat_service.engine.config import EngineConfig
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.thread_events import END, ThreadEmitter, deliver
from chat_service.engine.types import GenerationRequest, SamplingParams
from ortserve_testing.numerics import assert_greedy_agrees


@pytest.fixture(scope="module")
def engine(smollm_path):
    config = EngineConfig(threads=2, max_model_len=2048, slots=3)
    engine = BatchedEngine(ModelFolder(smollm_path, config.max_model_len), config)
    yield engine
    engine.close()


async def _tokens(engine, prompt_ids: list[int], max_tokens: int, delay: float) -> list[int]:
    await asyncio.sleep(delay)
    request = GenerationRequest(prompt_ids, max_tokens, SamplingParams(temperature=0.0))
    return [event.token_id async for event in engine.generate(request)]


def test_rows_joining_leaving_and_growing_kv_equal_plain_engine(engine, plain) -> None:
    long_prompt = "A list of animals: cat, dog, horse, " * 22  # 243 tokens: its 14th step grows the slots
    jobs = [
        ("Once upon a time,", 24, 0.0),
        ("def fibonacci(n):", INITIAL_LEN + 40, 0.05),  # crosses the initial slot length while others decode
        (long_prompt, 30, 0.2),  # joins just under the slot length, so the slots grow while three rows decode
        ("The three primary colours are", 12, 0.3),
        ("1, 2, 3, 4,", 40, 0.35),  # waits for a free slot
    ]

    async def run_all() -> list[list[int]]:
        return await asyncio.gather(*(_tokens(engine, plain.encode(p), n, d) for p, n, d in jobs))

    got = asyncio.run(run_all())
    assert len(plain.encode(long_prompt)) < INITIAL_LEN < len(plain.encode(long_prompt)) + 30
    # Several rows per step: exact where the CPU's kernels allow, up to a near-tie everywhere
    # (ortserve_testing.numerics).
    for tokens, (prompt, n, _) in zip(got, jobs, strict=True):
        assert_greedy_agrees(tokens, plain.greedy_with_margins(prompt, n))


def test_deliver_hands_a_step_over_in_one_callback_in_order() -> None:
    async def scenario() -> tuple[list[list[str]], int]:
        loop = asyncio.get_running_loop()
        calls = 0
        original = loop.call_soon_threadsafe

        def counting(*args):
            nonlocal calls
            calls += 1
            return original(*args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        queues = [asyncio.Queue(), asyncio.Queue()]
        emitters = [ThreadEmitter(loop, q, threading.Event()) for q in queues]
        items = [(emitters[i % 2], f"t{i}") for i in range(6)] + [(e, END) for e in emitters]
        thread = threading.Thread(target=deliver, args=(items,))
        thread.start()
        thread.join()
        received = []
        for queue in queues:
            got = []
            while (item := await queue.get()) is not END:
                got.append(item)
            received.append(got)
        return received, calls

    received, calls = asyncio.run(scenario())
    assert received == [["t0", "t2", "t4"], ["t1", "t3", "t5"]]
    assert calls == 1


def test_deliver_to_a_closed_loop_cancels_instead_of_raising() -> None:
    loop = asyncio.new_event_loop()
    cancelled = threading.Event()
    emitter = ThreadEmitter(loop, asyncio.Queue(), cancelled)
    loop.close()
    deliver([(emitter, "t0")])
    assert cancelled.is_set()


def test_long_prompt_prefilled_a_chunk_per_turn_between_decode_steps_equals_plain_engine(engine, plain) -> None:
    long_prompt = "The history of computing is long. " * 150 + "In summary,"
    assert len(plain.encode(long_prompt)) > 2 * PREFILL_TOKENS  # three chunks, with decode steps between them
    jobs = [
        ("Once upon a time,", 5, 0.0),  # done before the long prompt is in: it joins the batch by a slot move
        ("def fibonacci(n):", 80, 0.0),
        (long_prompt, 8, 0.1),
        ("List five fruits:", 6, 0.15),  # arrives while the long prompt is staged
    ]

    async def run_all() -> list[list[int]]:
        return await asyncio.gather(*(_tokens(engine, plain.encode(p), n, d) for p, n, d in jobs))

    got = asyncio.run(run_all())
    for tokens, (prompt, n, _) in zip(got, jobs, strict=True):
        assert_greedy_agrees(tokens, plain.greedy_with_margins(prompt, n))


def _arrival_order(engine, plain, prompts: list[str]) -> list[tuple[int, int]]:
    """(request, token index) in the order the tokens reached the event loop, for prompts submitted together."""
    order: list[tuple[int, int]] = []

    async def one(index: int, prompt: str) -> None:
        request = GenerationRequest(plain.encode(prompt), 3, SamplingParams(temperature=0.0))
        position = 0
        async for _event in engine.generate(request):
            order.append((index, position))
            position += 1

    async def run_all() -> None:
        await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))

    asyncio.run(run_all())
    return order


def _burst_order(smollm_path, plain, prefills_per_step: int) -> list[tuple[int, int]]:
    # The idle engine waits 200 ms, so all three are waiting when it starts admitting them.
    config = EngineConfig(threads=2, max_model_len=512, slots=3, batch_wait_s=0.2, prefills_per_step=prefills_per_step)
    engine = BatchedEngine(ModelFolder(smollm_path, config.max_model_len), config)
    try:
        return _arrival_order(engine, plain, ["The sky is", "Cats like to", "My name is"])
    finally:
        engine.close()


def test_one_prefill_per_step_lets_running_rows_decode_between_arrivals(smollm_path, plain) -> None:
    order = _burst_order(smollm_path, plain, 1)
    # The first arrival's second token (a decode step) comes before the third arrival's first token (its prefill).
    assert order.index((0, 1)) < order.index((2, 0)), order


def test_several_prefills_per_step_admit_a_burst_before_decoding(smollm_path, plain) -> None:
    order = _burst_order(smollm_path, plain, 3)
    firsts = [order.index((i, 0)) for i in range(3)]
    assert max(firsts) < min(order.index((i, 1)) for i in range(3)), order


def test_a_request_sent_as_another_ends_is_prefilled_before_the_next_step(smollm_path, plain) -> None:
    # A generous wait, so that the follow-up (sent 50 ms after the first one ends) always falls inside it.
    config = EngineConfig(threads=2, max_model_len=512, slots=2, refill_wait_s=1.0)
    engine = BatchedEngine(ModelFolder(smollm_path, config.max_model_len), config)
    order: list[str] = []

    async def stream(name: str, prompt: str, max_tokens: int) -> list[int]:
        request = GenerationRequest(plain.encode(prompt), max_tokens, SamplingParams(temperature=0.0))
        tokens = []
        async for event in engine.generate(request):
            order.append(name)
            tokens.append(event.token_id)
        return tokens

    async def short_then_follow_up() -> list[int]:
        await stream("short", "The sky is", 3)
        await asyncio.sleep(0.05)  # a client's round trip, over which the engine would otherwise run ~8 more steps
        return await stream("next", "Cats like to", 3)

    async def run_all() -> tuple[list[int], list[int]]:
        return await asyncio.gather(stream("long", "Once upon a time,", 30), short_then_follow_up())

    try:
        long_tokens, next_tokens = asyncio.run(run_all())
    finally:
        engine.close()
    last_short = len(order) - 1 - order[::-1].index("short")
    # The follow-up's first token (its prefill) comes before the long row's next token (the next decode step).
    assert order[last_short + 1] == "next", order
    # Both decoded beside another row (ortserve_testing.numerics).
    assert_greedy_agrees(long_tokens, plain.greedy_with_margins("Once upon a time,", 30))
    assert_greedy_agrees(next_tokens, plain.greedy_with_margins("Cats like to", 3))
