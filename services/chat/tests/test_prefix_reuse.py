"""Prefix reuse on the real model, in-process: requests that share a long system prompt, arriving together and
later, short and chunked, reuse its KV and still give the plain engine's greedy tokens."""

from __future__ import annotations

import asyncio

import pytest
from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.batched.scheduler import PREFILL_TOKENS
from chat_service.engine.config import EngineConfig
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.types import GenerationRequest, SamplingParams
from ortserve_testing.numerics import assert_greedy_agrees

BLOCK = 32
SYSTEM = (
    "You are the help desk of a hardware store. Answer in two sentences, name the aisle, and never recommend a "
    "competitor. Tools are in aisle 4, paint in aisle 7, garden in aisle 9. "
) * 3


@pytest.fixture(scope="module")
def engine(smollm_path):
    config = EngineConfig(
        threads=2, max_model_len=2048, slots=3, prefix_cache_bytes=64 * 2**20, prefix_block_tokens=BLOCK
    )
    engine = BatchedEngine(ModelFolder(smollm_path, config.max_model_len), config)
    yield engine
    engine.close()


def _chat(plain, question: str) -> str:
    return plain.chat_prompt([{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}])


async def _run(engine, prompt_ids: list[int], max_tokens: int, delay: float) -> tuple[list[int], int]:
    await asyncio.sleep(delay)
    request = GenerationRequest(prompt_ids, max_tokens, SamplingParams(temperature=0.0))
    events = [event async for event in engine.generate(request)]
    return [event.token_id for event in events], events[0].cached_tokens


def test_shared_system_prompt_is_reused_and_greedy_output_is_unchanged(engine, plain) -> None:
    system_tokens = len(plain.encode(_chat(plain, ""))) - 10
    first = _chat(plain, "Where do I find paint rollers?")
    together = [_chat(plain, q) for q in ("Do you sell hammers?", "Which glue holds ceramic?", "Any rakes left?")]
    later = _chat(plain, "How do I fix a dripping tap? " + "Please be specific. " * 100)  # over one prefill chunk
    assert len(plain.encode(later)) > PREFILL_TOKENS and system_tokens > 4 * BLOCK

    async def scenario():
        alone = await _run(engine, plain.encode(first), 20, 0)
        rest = await asyncio.gather(
            *(_run(engine, plain.encode(text), 20, 0) for text in together),
            _run(engine, plain.encode(later), 20, 0.1),
        )
        return [alone, *rest]

    results = asyncio.run(scenario())
    prompts = [first, *together, later]
    # Rows decode beside each other: exact where the CPU allows, up to a near-tie everywhere
    # (ortserve_testing.numerics).
    for (tokens, _), text in zip(results, prompts, strict=True):
        assert_greedy_agrees(tokens, plain.greedy_with_margins(text, 20))
    cached = [hit for _, hit in results]
    assert cached[0] == 0  # nothing seen before
    # Everyone after shares the system prompt's whole blocks; the staged long prompt skips them too.
    assert all(hit >= (system_tokens // BLOCK) * BLOCK and hit % BLOCK == 0 for hit in cached[1:]), cached


def test_the_same_prompt_again_computes_only_its_tail(engine, plain) -> None:
    prompt = _chat(plain, "What are your opening hours on Sunday?")

    async def twice():
        return [await _run(engine, plain.encode(prompt), 12, 0) for _ in range(2)]

    (tokens_a, _), (tokens_b, hit) = asyncio.run(twice())
    assert tokens_a == tokens_b == plain.greedy(prompt, 12)
    assert hit == ((len(plain.encode(prompt)) - 2) // BLOCK) * BLOCK


def _two_turns(engine, plain, question: str) -> tuple[list[int], list[int], list[int], int]:
    prompt = plain.encode(_chat(plain, question))

    async def run():
        reply, _ = await _run(engine, prompt, 24, 0)
        follow_up = [*prompt, *reply, *plain.encode("\nAnd the rakes?")]
        return reply, follow_up, *(await _run(engine, follow_up, 8, 0))

    return asyncio.run(run())


def test_a_finished_reply_is_cached_after_its_prompt_when_asked(smollm_path, plain) -> None:
    """With CHAT_PREFIX_CACHE_REPLIES the next turn of a conversation, which starts with the last prompt and its
    reply, finds both in the cache."""
    config = EngineConfig(
        threads=2,
        max_model_len=2048,
        slots=2,
        prefix_cache_bytes=64 * 2**20,
        prefix_block_tokens=BLOCK,
        cache_replies=True,
    )
    engine = BatchedEngine(ModelFolder(smollm_path, config.max_model_len), config)
    try:
        reply, follow_up, tokens, hit = _two_turns(engine, plain, "Which aisle has the garden hoses?")
    finally:
        engine.close()
    prompt_length = len(follow_up) - len(reply) - len(plain.encode("\nAnd the rakes?"))
    # The reply's last token was sampled but never fed, so its KV is not there to keep.
    assert hit == ((prompt_length + len(reply) - 2) // BLOCK) * BLOCK
    assert hit > ((prompt_length - 2) // BLOCK) * BLOCK
    # The reply's positions were computed a token at a time, so only greedy agreement up to a near-tie is promised.
    assert_greedy_agrees(tokens, plain.greedy_with_margins(plain.decode(follow_up), 8))


def test_by_default_a_reply_is_not_cached_and_the_next_turn_is_exactly_a_cold_prefill(engine, plain) -> None:
    reply, follow_up, tokens, hit = _two_turns(engine, plain, "Where are the ladders?")
    prompt_length = len(follow_up) - len(reply) - len(plain.encode("\nAnd the rakes?"))
    assert ((prompt_length - 2) // BLOCK) * BLOCK <= hit < prompt_length
    # Cached prompt blocks plus a chunked prefill of the rest: the plain engine's logits bit for bit, on every CPU
    # (bench/kernel_numerics.py), so its greedy tokens exactly.
    assert tokens == plain.greedy(plain.decode(follow_up), 8)


def test_a_seeded_request_alone_gives_the_same_tokens_cold_and_from_the_cache(engine, plain) -> None:
    # A system prompt no other test sends, so the first run is cold.
    messages = [{"role": "system", "content": "You name pets, briefly. " * 12}, {"role": "user", "content": "A cat?"}]
    prompt = plain.encode(plain.chat_prompt(messages))
    sampling = SamplingParams(temperature=1.0, top_p=0.95, seed=1234)

    async def three_times():
        runs = []
        for _ in range(3):
            events = [e async for e in engine.generate(GenerationRequest(prompt, 24, sampling))]
            runs.append(([e.token_id for e in events], events[0].cached_tokens))
        return runs

    (cold, hit_cold), (warm, hit_warm), (again, _) = asyncio.run(three_times())
    assert hit_cold == 0 and hit_warm > 0
    assert cold == warm == again
