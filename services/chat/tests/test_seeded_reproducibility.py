"""Seeded requests on the batched engine, in-process, on the real model: what is exact on every CPU.

- Alone, a seeded request gives the same tokens every time, cold or from the prefix cache (the cache leaves at least
  two prompt tokens to compute, which a cold prefill matches bit for bit).
- In batch-invariant mode a row's logits do not depend on the other rows, so a seeded request gives the same tokens
  alone and in company. Without it that holds only where the CPU's kernels give a row the same result at one row and
  at several (AVX-512 VNNI: yes; AVX2: no, ortserve_testing.numerics), which the engine's decoder is asked directly.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.config import EngineConfig
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.types import EngineLoadError, GenerationRequest, SamplingParams

SEEDED = SamplingParams(temperature=1.0, top_p=0.95, seed=1234)
COMPANY = ["The quick brown fox", "1, 2, 3, 4,", "def fibonacci(n):"]


def _engine(smollm_path, invariant: bool) -> BatchedEngine:
    config = EngineConfig(
        threads=2, max_model_len=1024, slots=4, prefix_cache_bytes=16 * 2**20, batch_invariant=invariant
    )
    return BatchedEngine(ModelFolder(smollm_path, config.max_model_len), config)


async def _tokens(engine, prompt: list[int], sampling: SamplingParams, max_tokens: int, delay: float = 0.0):
    await asyncio.sleep(delay)
    return [e.token_id async for e in engine.generate(GenerationRequest(prompt, max_tokens, sampling))]


def _alone_and_in_company(engine, plain, prompt: list[int]) -> tuple[list[int], list[int]]:
    async def scenario():
        alone = await _tokens(engine, prompt, SEEDED, 32)
        company = [
            _tokens(engine, plain.encode(p), SamplingParams(temperature=1.0, seed=i), 48) for i, p in enumerate(COMPANY)
        ]
        *_, together = await asyncio.gather(*company, _tokens(engine, prompt, SEEDED, 32, delay=0.02))
        return alone, together

    return asyncio.run(scenario())


def _poem_alone_and_in_company(smollm_path, plain, invariant: bool) -> tuple[list[int], list[int]]:
    engine = _engine(smollm_path, invariant)
    prompt = plain.encode(plain.chat_prompt([{"role": "user", "content": "Write a short poem about the sea."}]))
    try:
        return _alone_and_in_company(engine, plain, prompt)
    finally:
        engine.close()


def _rows_are_invariant(smollm_path, plain) -> bool:
    """Whether this CPU's kernels give a decode row the same logits alone and beside another row."""
    folder = ModelFolder(smollm_path, max_model_len=256)
    decoder = OnnxDecoder(smollm_path, folder.config, 2, 2, 256)
    prompts = [plain.encode("Once upon a time,"), plain.encode("The quick brown fox")]
    for slot, prompt in enumerate(prompts):
        decoder.prefill([prompt], slot)
    alone = decoder.decode([prompts[0][-1]], [len(prompts[0])])[0].copy()
    # The same token again into the same position: the KV write is the same, so only the company changes.
    beside = decoder.decode([prompts[0][-1], prompts[1][-1]], [len(prompts[0]), len(prompts[1])])[0].copy()
    return bool(np.array_equal(alone, beside))


def test_a_seeded_request_alone_reproduces_cold_and_from_the_cache(smollm_path, plain) -> None:
    engine = _engine(smollm_path, invariant=False)
    prompt = plain.encode(plain.chat_prompt([{"role": "user", "content": "Invent a name for a cat. " * 8}]))
    try:

        async def three():
            return [await _tokens(engine, prompt, SEEDED, 32) for _ in range(3)]

        cold, warm, again = asyncio.run(three())
        assert engine.stats().prefix_cache_hit_tokens > 0  # the second and third were served from the cache
    finally:
        engine.close()
    assert cold == warm == again


def test_batch_invariant_mode_gives_a_seeded_request_the_same_tokens_in_company(
    smollm_path, plain, rows_invariant
) -> None:
    if not rows_invariant:
        pytest.skip("this CPU's several-row kernels give a row other logits in other company: no mode is exact here")
    alone, together = _poem_alone_and_in_company(smollm_path, plain, invariant=True)
    assert together == alone


def test_without_batch_invariance_company_changes_nothing_where_the_kernels_are_row_invariant(
    smollm_path, plain
) -> None:
    if not _rows_are_invariant(smollm_path, plain):
        pytest.skip("this CPU's kernels differ between one decode row and two: only batch-invariant mode is exact")
    alone, together = _poem_alone_and_in_company(smollm_path, plain, invariant=False)
    assert together == alone


def test_batch_invariant_mode_needs_two_slots(smollm_path) -> None:
    config = EngineConfig(threads=1, max_model_len=256, slots=1, batch_invariant=True)
    with pytest.raises(EngineLoadError, match="at least 2 KV slots"):
        BatchedEngine(ModelFolder(smollm_path, config.max_model_len), config)
