"""Unit tests of the sampler's guidance mask and logprobs, on the real SmolLM2 vocabulary and synthetic logits."""

from __future__ import annotations

import json
import re

import jsonschema
import numpy as np
import pytest
from chat_service.engine.guidance import GuidanceError, check_guidance
from chat_service.engine.sampler import TokenSampler
from chat_service.engine.types import GuidanceSpec, SamplingParams
from chat_service.engine.vocabulary import Vocabulary

VOCAB = 49152
EOS = 2


@pytest.fixture(scope="module")
def vocabulary(smollm_path) -> Vocabulary:
    return Vocabulary(smollm_path / "tokenizer.json", VOCAB, {EOS})


def _generate(sampler: TokenSampler, vocabulary: Vocabulary, seed: int, steps: int = 200) -> str:
    """Random logits each step (a model that wants anything at all); the grammar alone shapes the output."""
    rng = np.random.default_rng(seed)
    out = b""
    for _ in range(steps):
        token = sampler.sample(rng.normal(0, 3, VOCAB).astype(np.float32))
        if token == EOS:
            return out.decode("utf-8")
        out += vocabulary.token_bytes(token)
    pytest.fail(f"no end of sequence after {steps} tokens: {out!r}")


@pytest.mark.parametrize("seed", range(3))
def test_json_schema_guidance_forces_valid_json(vocabulary: Vocabulary, seed: int) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    params = SamplingParams(temperature=1.0, seed=seed, guidance=GuidanceSpec("json_schema", json.dumps(schema)))
    text = _generate(TokenSampler(params, VOCAB, vocabulary), vocabulary, seed)
    jsonschema.validate(json.loads(text), schema)


def test_regex_and_lark_guidance(vocabulary: Vocabulary) -> None:
    regex = r"(red|green|blue) [0-9]{2}"
    params = SamplingParams(temperature=0.0, guidance=GuidanceSpec("regex", regex))
    assert re.fullmatch(regex, _generate(TokenSampler(params, VOCAB, vocabulary), vocabulary, 1))
    params = SamplingParams(temperature=1.0, seed=3, guidance=GuidanceSpec("lark", 'start: "yes" | "no"'))
    assert _generate(TokenSampler(params, VOCAB, vocabulary), vocabulary, 2) in ("yes", "no")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (GuidanceSpec("json_schema", '{"type": "nope"}'), "nope"),
        (GuidanceSpec("json_schema", "{not json"), "not JSON"),
        (GuidanceSpec("regex", "a(b"), "unclosed group"),
        (GuidanceSpec("lark", "start: missing_rule"), "missing_rule"),
    ],
)
def test_invalid_grammars_are_refused(vocabulary: Vocabulary, spec: GuidanceSpec, fragment: str) -> None:
    with pytest.raises(GuidanceError, match=fragment):
        check_guidance(spec, vocabulary)


def test_guidance_needs_the_vocabulary() -> None:
    with pytest.raises(ValueError):
        TokenSampler(SamplingParams(guidance=GuidanceSpec("regex", "a")), VOCAB)


def test_logprobs_are_log_softmax_after_temperature() -> None:
    logits = np.array([2.0, 1.0, 0.5, -1.0], dtype=np.float32)
    for temperature in (0.5, 1.0, 1.7):
        sampler = TokenSampler(SamplingParams(temperature=temperature, seed=0, logprobs=3), 4)
        token = sampler.sample(logits)
        scaled = logits.astype(np.float64) / temperature
        expected = scaled - np.log(np.exp(scaled).sum())
        assert sampler.logprobs is not None
        assert sampler.logprobs.logprob == pytest.approx(expected[token])
        assert [t for t, _ in sampler.logprobs.top] == [0, 1, 2]
        assert [lp for _, lp in sampler.logprobs.top] == pytest.approx(list(expected[:3]))


def test_greedy_logprobs_are_the_unscaled_distribution_and_zero_top_means_none() -> None:
    logits = np.array([3.0, 1.0], dtype=np.float32)
    sampler = TokenSampler(SamplingParams(temperature=0.0, logprobs=0), 2)
    assert sampler.sample(logits) == 0
    assert sampler.logprobs is not None and sampler.logprobs.top == ()
    assert sampler.logprobs.logprob == pytest.approx(-np.log1p(np.exp(-2.0)))
    assert TokenSampler(SamplingParams(temperature=0.0), 2).logprobs is None


def test_logprobs_are_finite_and_not_positive_even_for_a_certain_token(vocabulary: Vocabulary) -> None:
    logits = np.full(VOCAB, -50.0, dtype=np.float32)
    logits[42] = 60.0
    # The guidance mask applies after logprobs are taken, so masked-out alternatives still show finite values.
    spec = GuidanceSpec("regex", "x")
    sampler = TokenSampler(SamplingParams(temperature=0.0, logprobs=20, guidance=spec), VOCAB, vocabulary)
    token = sampler.sample(logits)
    assert vocabulary.token_bytes(token) == b"x"
    assert sampler.logprobs is not None and len(sampler.logprobs.top) == 20
    assert all(np.isfinite(lp) and lp <= 0.0 for _, lp in sampler.logprobs.top)
    assert sampler.logprobs.top[0] == (42, 0.0)


async def test_a_forced_tool_calls_grammar_is_compiled_once_per_request(vocabulary: Vocabulary, monkeypatch) -> None:
    """Checked before the stream starts, then used by every choice's matcher: compiled once, not per step of the way."""
    from chat_service.engine import guidance as guidance_module
    from chat_service.serving.guided import resolve_guidance
    from chat_service.tools.request import plan_tools
    from ortserve_common.protocol.chat import NamedToolChoice, ToolDefinition

    compiled: list[str] = []
    original = guidance_module.llguidance.LLMatcher.grammar_from_json_schema

    def counting(source, **kwargs):
        compiled.append(source)
        return original(source, **kwargs)

    monkeypatch.setattr(guidance_module.llguidance.LLMatcher, "grammar_from_json_schema", counting)
    parameters = {
        "type": "object",
        "properties": {"city": {"enum": ["Paris", "Rome"]}},
        "required": ["city"],
        "additionalProperties": False,
    }
    tools = [ToolDefinition.model_validate({"type": "function", "function": {"name": "f", "parameters": parameters}})]
    choice = NamedToolChoice.model_validate({"type": "function", "function": {"name": "f"}})
    plan = plan_tools(tools, choice, vocabulary)
    assert plan.guidance is not None
    spec = await resolve_guidance([(plan.guidance, "tool_choice")], vocabulary)
    assert spec is not None
    for seed in range(2):  # two choices (n = 2), each with its own matcher
        out = _generate(
            TokenSampler(SamplingParams(temperature=1.0, seed=seed, guidance=spec), VOCAB, vocabulary), vocabulary, seed
        )
        assert json.loads(out)["name"] == "f"
    assert len(compiled) == 1, compiled
