"""The float16 KV cache (CHAT_KV_CACHE_DTYPE=float16, engine/batched/half_kv.py) on the real SmolLM2 and
Qwen2.5-Coder-0.5B: half the memory, logits within a measured bound of the float32 cache's, and seeded requests that
reproduce.

Why a bound and not equality: the attention's query, key, value and output are rounded to float16 (11 significant
bits) and its rotary embedding runs in float16; the scores, softmax and weighted sum are still float32 on every ISA
(onnxruntime widens the float16 operands first), so the difference comes from that rounding alone, not from the CPU.
Measured teacher-forced over 300 tokens on the AVX-512 Xeon: largest |Δ logit| 2.2 on SmolLM2 (logits span ~40;
median 0.65) and 0.42 on Qwen2.5-Coder-0.5B (median 0.25). A cache read at the wrong positions or with the wrong
layout moves logits by whole units everywhere and the next token's argmax with them, which the agreement share
catches.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import onnx
import pytest
from chat_service.engine.batched import decoder as decoder_module
from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.batched.gathered_logits import VariantUnavailable, read_graph
from chat_service.engine.batched.half_kv import ATTENTION_OP, half_kv_model
from chat_service.engine.config import EngineConfig
from chat_service.engine.fingerprint import system_fingerprint
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.types import GenerationRequest, SamplingParams
from chat_service.settings import ChatSettings
from chat_testing import MODEL_ID, ChatServer
from onnx import TensorProto, helper
from ortserve_common.models_dir import models_dir
from pydantic import ValidationError

logger = logging.getLogger(__name__)
QWEN = models_dir() / "qwen2.5-coder-0.5b-instruct"
# (model folder, bound on one logit's |Δ| ≈ 1.4 × the largest measured, share of steps whose argmax must agree)
MODELS = {"smollm2": (None, 3.0, 0.95), "qwen-0.5b": (QWEN, 0.6, 0.97)}
STEPS = 300  # past the cache's first 256 positions: a grow copies float16 buffers too
PROMPTS = ["def fibonacci(n):", "Write a short story about a lighthouse keeper who finds a message in a bottle."]


def test_the_edit_gives_every_attention_a_float16_cache_and_leaves_its_source_alone(smollm_path) -> None:
    source = read_graph(smollm_path / "model.onnx")
    before = source.SerializeToString()
    edited = half_kv_model(source)
    assert source.SerializeToString() == before
    kv = [
        info
        for info in [*edited.graph.input, *edited.graph.output]
        if info.name.startswith(("past_key_values.", "present."))
    ]
    attention = [node for node in edited.graph.node if node.op_type == ATTENTION_OP]
    assert len(kv) == 4 * len(attention) > 0
    assert {info.type.tensor_type.elem_type for info in kv} == {TensorProto.FLOAT16}
    casts = {node.output[0]: node for node in edited.graph.node if node.op_type == "Cast"}
    for node in attention:
        for name in (node.input[0], node.input[7], node.input[8]):
            assert helper.get_attribute_value(casts[name].attribute[0]) == TensorProto.FLOAT16
        back = next(n for n in edited.graph.node if n.op_type == "Cast" and n.input[0] == node.output[0])
        assert helper.get_attribute_value(back.attribute[0]) == TensorProto.FLOAT
    defined = {i.name for i in edited.graph.input} | {t.name for t in edited.graph.initializer} | {""}
    for node in edited.graph.node:  # still in topological order, each name made once
        assert set(node.input) <= defined, node.name
        assert not (set(node.output) - {""}) & defined, node.name  # "": an optional output left out
        defined |= set(node.output)


def test_a_graph_without_group_query_attention_is_refused() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    with pytest.raises(VariantUnavailable, match=ATTENTION_OP):
        half_kv_model(helper.make_model(graph))


@pytest.mark.parametrize("model", MODELS)
def test_the_float16_cache_halves_the_kv_and_tracks_the_float32_one(model, smollm_path) -> None:
    path, bound, agreement = MODELS[model]
    path = path or smollm_path
    if not (path / "model.onnx").exists():
        pytest.skip(f"{path} is not built (make model)")
    folder = ModelFolder(path, max_model_len=1024)
    full = OnnxDecoder(path, folder.config, 2, 1, 1024)
    half = OnnxDecoder(path, folder.config, 2, 1, 1024, kv_dtype="float16")
    assert (full.kv_dtype, half.kv_dtype) == (np.float32, np.float16)
    assert {k.dtype for k in half.cache.keys + half.cache.values} == {np.dtype(np.float16)}
    assert half.cache.bytes_per_position * 2 == full.cache.bytes_per_position
    worst, agreed, steps = 0.0, 0, 0
    for prompt in PROMPTS:
        ids = [int(t) for t in folder.tokenizer.encode(prompt)]
        want, got = full.prefill([ids], 0)[0].copy(), half.prefill([ids], 0)[0].copy()
        for step in range(STEPS):
            # Teacher-forced: both read the float32 cache's greedy tokens, so a departure does not compound.
            worst = max(worst, float(np.max(np.abs(want - got))))
            agreed += int(np.argmax(want) == np.argmax(got))
            steps += 1
            token, length = int(np.argmax(want)), len(ids) + step
            for decoder in (full, half):
                decoder.cache.ensure(length + 1)
            want, got = full.decode([token], [length])[0].copy(), half.decode([token], [length])[0].copy()
    logger.info("%s: largest |Δ logit| %.3f, argmax agreed on %d of %d steps", model, worst, agreed, steps)
    assert half.cache.capacity > 256
    assert worst <= bound
    assert agreed >= agreement * steps


async def _tokens(engine: BatchedEngine, prompt: list[int], sampling: SamplingParams) -> list[int]:
    return [e.token_id async for e in engine.generate(GenerationRequest(prompt, 32, sampling))]


def test_a_seeded_request_on_the_float16_cache_reproduces_cold_and_from_the_prefix_cache(smollm_path, plain) -> None:
    config = EngineConfig(
        threads=2, max_model_len=1024, slots=2, prefix_cache_bytes=8 * 2**20, kv_cache_dtype="float16"
    )
    engine = BatchedEngine(ModelFolder(smollm_path, config.max_model_len), config)
    full = BatchedEngine(ModelFolder(smollm_path, 1024), EngineConfig(threads=2, max_model_len=1024, slots=2))
    prompt = plain.encode(plain.chat_prompt([{"role": "user", "content": "Write a short poem about the sea."}]))
    sampling = SamplingParams(temperature=1.0, top_p=0.95, seed=1234)
    try:
        cold = asyncio.run(_tokens(engine, prompt, sampling))
        assert engine.stats().prefix_cache_hit_tokens == 0
        cached = asyncio.run(_tokens(engine, prompt, sampling))
        assert engine.stats().prefix_cache_hit_tokens > 0  # the second came from the (float16) prefix cache
        assert cached == cold and len(cold) == 32
        assert engine.system_fingerprint != full.system_fingerprint
    finally:
        engine.close()
        full.close()


def test_the_service_serves_the_float16_cache_by_default_and_a_seeded_request_reproduces(smollm_path) -> None:
    """chat_testing.ChatServer pins float32 for the suite; None leaves CHAT_KV_CACHE_DTYPE unset, as a user does."""
    server = ChatServer(smollm_path, CHAT_KV_CACHE_DTYPE=None).start()
    try:
        client = server.client()
        kwargs = dict(
            model=MODEL_ID,
            messages=[
                {"role": "system", "content": "You are a helpful assistant who answers in verse, briefly and kindly."},
                {"role": "user", "content": "Write a short poem about the sea."},
            ],
            temperature=1.0,
            top_p=0.95,
            seed=1234,
            max_tokens=24,
        )
        cold, cached = client.chat.completions.create(**kwargs), client.chat.completions.create(**kwargs)
    finally:
        server.stop()
    # The fingerprint names the cache the engine opened: float16, not a fallback to the graph's float32.
    assert cold.system_fingerprint == system_fingerprint(smollm_path, "batched", False, "float16")
    assert cold.system_fingerprint != system_fingerprint(smollm_path, "batched", False, "float32")
    assert cold.usage.prompt_tokens_details.cached_tokens == 0
    assert cached.usage.prompt_tokens_details.cached_tokens > 0  # its prompt came from the float16 prefix cache
    assert cached.choices[0].message.content == cold.choices[0].message.content
    assert cold.choices[0].message.content


def test_a_graph_the_edit_does_not_fit_keeps_a_float32_cache(smollm_path, monkeypatch, caplog) -> None:
    def refuse(graph: onnx.ModelProto) -> onnx.ModelProto:
        raise VariantUnavailable("made to fail by the test")

    monkeypatch.setattr(decoder_module, "half_kv_model", refuse)
    folder = ModelFolder(smollm_path, max_model_len=512)
    with caplog.at_level(logging.WARNING, logger=decoder_module.__name__):
        decoder = OnnxDecoder(smollm_path, folder.config, 2, 1, 512, kv_dtype="float16")
    assert "made to fail by the test" in caplog.text
    assert decoder.kv_dtype == np.float32 and decoder.cache.keys[0].dtype == np.float32
    assert np.isfinite(decoder.prefill([[1, 2, 3]], 0)).all()


def test_the_setting_reaches_the_engine_config_and_refuses_other_types(tmp_path) -> None:
    # The service serves float16 unless told otherwise; the engine's own default stays the graph's float32.
    assert EngineConfig.from_settings(ChatSettings(model_path=tmp_path)).kv_cache_dtype == "float16"
    full = ChatSettings(model_path=tmp_path, kv_cache_dtype="float32")
    assert EngineConfig.from_settings(full).kv_cache_dtype == "float32"
    assert EngineConfig().kv_cache_dtype == "float32"
    with pytest.raises(ValidationError, match="kv_cache_dtype"):
        ChatSettings(model_path=tmp_path, kv_cache_dtype="int8")
