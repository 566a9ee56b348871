"""The batched engine opens its model folder without an og.Model: the tokenizer and chat template come from the
folder's og.Config, and the weights are in memory once, in the engine's own onnxruntime session (bench/memory.py
measures what that saves: 500 MB on Qwen2.5-Coder-0.5B). Its tokens stay the plain engine's, token for token."""

from __future__ import annotations

import asyncio

import onnxruntime_genai as og
import pytest
from chat_service.engine.continuous import ContinuousBatchingEngine
from chat_service.engine.types import GenerationRequest, SamplingParams
from chat_service.model_pool import load_engine
from chat_service.settings import ChatSettings

pytestmark = pytest.mark.model


def test_the_batched_engine_loads_no_og_model_and_matches_the_plain_engine(smollm_path, plain, monkeypatch) -> None:
    def no_weights_here(*args: object) -> None:
        raise AssertionError("og.Model would load the weights a second time")

    monkeypatch.setattr(og, "Model", no_weights_here)
    engine = load_engine(smollm_path, ChatSettings(model_path=smollm_path, max_model_len=1024, max_batch_size=2))
    try:
        assert isinstance(engine, ContinuousBatchingEngine)
        prompt = plain.chat_prompt([{"role": "user", "content": "What is the capital of France?"}])
        ids = engine.tokenizer.encode(prompt)
        assert ids == plain.encode(prompt)

        async def generate() -> list[int]:
            request = GenerationRequest(ids, 16, SamplingParams(temperature=0.0))
            return [event.token_id async for event in engine.generate(request)]

        assert asyncio.run(generate()) == plain.greedy(prompt, 16)
    finally:
        engine.close()
