"""Prefix reuse on the real model, in-process: requests that share a long system prompt, arriving together and
later, short and chunked, reuse its KV and still give the plain engine's greedy tokens."""

from __future__ import annotations

import asyncio

import pytest
from chat_service.engine.batch_scheduler import PREFILL_TOKENS
from chat_service.engine.continuous import ContinuousBatchingEngine
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.types import GenerationRequest, SamplingParams

BLOCK = 32
SYSTEM = (
    "You are the help desk of a hardware store. Answer in two sentences, name the aisle, and never recommend a "
    "competitor. Tools are in aisle 4, paint in aisle 7, garden in aisle 9. "
) * 3


@pytest.fixture(scope="module")
def engine(smollm_path):
    inner = ModelFolder(smollm_path, max_model_len=2048)
    engine = ContinuousBatchingEngine(
        inner,
        threads=2,
        max_batch_size=3,
        batch_wait_ms=0,
        capped=True,
        prefix_cache_bytes=64 * 2**20,
        prefix_block_tokens=BLOCK,
    )
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
    expected = [plain.greedy(text, 20) for text in prompts]
    assert [tokens for tokens, _ in results] == expected
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
    assert hit == ((len(plain.encode(prompt)) - 1) // BLOCK) * BLOCK


def test_a_finished_reply_is_cached_after_its_prompt(engine, plain) -> None:
    """The next turn of a conversation starts with the last prompt and its reply: both come from the cache, and the
    greedy tokens are still the plain engine's."""
    prompt = plain.encode(_chat(plain, "Which aisle has the garden hoses?"))

    async def two_turns():
        reply, _ = await _run(engine, prompt, 24, 0)
        follow_up = [*prompt, *reply, *plain.encode("\nAnd the rakes?")]
        return reply, follow_up, await _run(engine, follow_up, 8, 0)

    reply, follow_up, (tokens, hit) = asyncio.run(two_turns())
    # The reply's last token was sampled but never fed, so its KV is not there to keep.
    assert hit == ((len(prompt) + len(reply) - 1) // BLOCK) * BLOCK
    assert tokens == plain.greedy(plain.decode(follow_up), 8)
