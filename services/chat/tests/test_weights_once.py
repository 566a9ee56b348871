"""The batched engine opens its model folder without an og.Model: the tokenizer and chat template come from the
folder's og.Config, and the weights are in memory once, in the engine's own onnxruntime session (bench/memory.py
measures what that saves: 500 MB on Qwen2.5-Coder-0.5B). Its tokens stay the plain engine's, token for token, on
SmolLM2 and on Qwen2.5-Coder-0.5B."""

from __future__ import annotations

import asyncio

import onnxruntime_genai as og
import pytest
from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.types import GenerationRequest, SamplingParams
from chat_service.models.pool import load_engine
from chat_service.settings import ChatSettings
from chat_testing import MODELS_DIR
from ortserve_testing.plain_engine import PlainGenerator

pytestmark = pytest.mark.model


QWEN = MODELS_DIR / "qwen2.5-coder-0.5b-instruct"


@pytest.fixture(params=["smollm2", "qwen2.5-0.5b"])
def model(request, smollm_path, plain) -> tuple:
    """(folder, the plain ONNX Runtime GenAI loop on it): SmolLM2, and Qwen2.5-Coder-0.5B at real size."""
    if request.param == "smollm2":
        return smollm_path, plain
    if not (QWEN / ".complete").exists():
        pytest.fail(f"{QWEN} is not built: make model builds it")
    return QWEN, PlainGenerator(QWEN)


def test_the_batched_engine_loads_no_og_model_and_matches_the_plain_engine(model, monkeypatch) -> None:
    path, plain = model

    def no_weights_here(*args: object) -> None:
        raise AssertionError("og.Model would load the weights a second time")

    monkeypatch.setattr(og, "Model", no_weights_here)
    # float32 KV, as the plain loop computes: the service's float16 default may depart from its tokens at a near-tie
    settings = ChatSettings(model_path=path, max_model_len=1024, max_batch_size=2, kv_cache_dtype="float32")
    engine = load_engine(path, settings)
    try:
        assert isinstance(engine, BatchedEngine)
        for question in ("What is the capital of France?", "Write a Python function that reverses a string."):
            prompt = plain.chat_prompt([{"role": "user", "content": question}])
            ids = engine.tokenizer.encode(prompt)
            assert ids == plain.encode(prompt)

            async def generate(ids: list[int] = ids) -> list[int]:
                request = GenerationRequest(ids, 24, SamplingParams(temperature=0.0))
                return [event.token_id async for event in engine.generate(request)]

            assert asyncio.run(generate()) == plain.greedy(prompt, 24)
    finally:
        engine.close()
