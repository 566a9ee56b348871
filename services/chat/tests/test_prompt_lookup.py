"""Prompt-lookup speculation on the real models, in-process: it changes how many model calls a reply takes, never
the reply.

Why the comparisons are exact by construction. A row first decodes `prompt_lookup_probation` tokens one a step (the
one-token path) while the lookup's guesses are scored. If it then speculates, it verifies at least one draft every
step, so each of its tokens comes from logits that onnxruntime computed in a call of two or more new tokens over the
row's past (one attention path), never from the one-token path, until it gives up and decodes one token a step
again. Both decisions read only the tokens. The row's greedy tokens are then what a decoder run by hand that way
gives: one-token steps, then the speculating stretch teacher-forced in chunks (wherever they were cut: whatever was
drafted and however much was accepted), then one-token steps. Where a CPU gives a position the same logits whichever
way the chunks are cut (checked first, on this CPU), that is one call over the whole stretch, so the tests compare
with it exactly, and with the same request at other draft lengths (other calls, other acceptances) exactly. Seeded
sampling draws one uniform per token in order with the row's own sampler, so it is exact in the same way.

Against the engine without speculation (the one-token path throughout, which differs from the chunked one in the
low bits: 0.2-1.2 of a logit here), the tokens may part only at a near-tie, bounded by what the two paths were
measured to differ by (ortserve_testing.numerics).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from chat_service.engine.batched import speculation
from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.batched.speculation import SpeculationState
from chat_service.engine.config import EngineConfig
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.types import GenerationRequest, SamplingParams
from chat_testing import MODELS_DIR
from ortserve_testing.numerics import SAFETY, GreedyReference, assert_greedy_agrees

QWEN = MODELS_DIR / "qwen2.5-coder-0.5b-instruct"
PROBATION = EngineConfig().prompt_lookup_probation
GREEDY = SamplingParams(temperature=0.0)
# The model's own defaults and then some: the repetition penalty and logprobs change the sampler's state per token.
SEEDED = SamplingParams(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05, seed=7, logprobs=2)
# A raw prompt that SmolLM2 continues by repeating it: drafts are accepted.
REPEATING = (
    "Animals: cat, dog, horse, cow, sheep, goat, duck.\nAnimals: cat, dog, horse, cow, sheep, goat, duck.\nAnimals:"
)
CODE = '''def mean(values):
    """The arithmetic mean of a non-empty list."""
    total = 0
    for value in values:
        total += value
    return total / len(values)
'''


def _engine(path: Path, slots: int = 2, probation: int = PROBATION) -> BatchedEngine:
    config = EngineConfig(
        threads=2,
        max_model_len=1024,
        slots=slots,
        prompt_lookup=True,
        prompt_lookup_tokens=8,
        prompt_lookup_probation=probation,
    )
    return BatchedEngine(ModelFolder(path, config.max_model_len), config)


def _generate(engine: BatchedEngine, prompt: list[int], sampling: SamplingParams, n: int, spec: int | None) -> list:
    async def run() -> list:
        request = GenerationRequest(prompt, n, sampling, speculative_tokens=spec)
        return [event async for event in engine.generate(request)]

    return asyncio.run(run())


def _all_logits(decoder: OnnxDecoder, tokens: list[int], chunks: list[int]) -> np.ndarray:
    """Logits after every position of `tokens`, run into slot 0 in calls of the given sizes (the rest last)."""
    out, at = [], 0
    for size in [*chunks, len(tokens) - sum(chunks)]:
        piece = tokens[at : at + size]
        if at == 0:
            ids, mask = np.asarray([piece], np.int64), np.ones((1, size), np.int64)
            out.append(decoder._run(ids, mask, 0, 1)[0].astype(np.float32))
        else:
            out.append(decoder.verify(0, piece, at).astype(np.float32))
        at += size
    return np.concatenate(out)


def _by_hand(path: Path, prompt: list[int], reply: list[int], chunked: range) -> list[int]:
    """The greedy tokens a decoder gives run by hand over `reply` (teacher-forced): a prefill of the prompt, then one
    token a step, but the tokens whose indices are in `chunked` from one call over their predecessors. Skips the test
    where this CPU gives that stretch other logits when it is cut into other chunks of two or more."""
    decoder = OnnxDecoder(path, ModelFolder(path, max_model_len=1024).config, 2, 1, 1024)
    tokens = [int(np.argmax(decoder.prefill([prompt], 0)[0]))]
    while len(tokens) < len(reply):
        at = len(prompt) + len(tokens) - 1  # where the predecessor of the next token goes
        if len(tokens) not in chunked:
            tokens.append(int(np.argmax(decoder.decode([reply[len(tokens) - 1]], [at])[0])))
            continue
        stretch = reply[len(tokens) - 1 : chunked.stop - 1]
        whole = decoder.verify(0, stretch, at).astype(np.float32)
        pieces, cut = [], 0
        for size in (2, 3, 5, len(stretch)):
            if cut < len(stretch):
                pieces.append(decoder.verify(0, stretch[cut : cut + size], at + cut).astype(np.float32))
                cut += size
        if not np.array_equal(whole, np.concatenate(pieces)):
            pytest.skip("this CPU's chunked calls depend on where the chunks are cut: only near-tie bounds hold here")
        tokens.extend(int(token) for token in np.argmax(whole, axis=-1))
    return tokens


def _speculated(prompt: list[int], reply: list[int]) -> range:
    """The indices of the reply's tokens that came from verify calls: from the end of the probation to the token
    where the row gave up (or the end). The lookup's state starts from the prompt and the first token, as the
    scheduler's does when the row first decodes alone."""
    state = SpeculationState([*prompt, reply[0]], 8, 3, PROBATION)
    for index, token in enumerate(reply[1:], start=1):
        if state.on_probation:
            state.append(token)
            if state.given_up:
                return range(index + 1, index + 1)  # judged at the probation's end: it never speculated
            continue
        state.append(token)
        if state.given_up:
            return range(PROBATION + 1, index + 1)
    return range(PROBATION + 1, len(reply))


def _text_tokens(events: list) -> list[int]:
    return [e.token_id for e in events]


def test_greedy_with_speculation_is_the_chunked_greedy_whatever_was_accepted(smollm_path) -> None:
    engine = _engine(smollm_path)
    prompt = engine.tokenizer.encode(REPEATING)
    try:
        before = engine.stats()
        eight = _text_tokens(_generate(engine, prompt, GREEDY, 48, 8))
        after = engine.stats()
        one = _text_tokens(_generate(engine, prompt, GREEDY, 48, 1))
        three = _text_tokens(_generate(engine, prompt, GREEDY, 48, 3))
    finally:
        engine.close()
    drafted = after.spec_draft_tokens - before.spec_draft_tokens
    accepted = after.spec_accepted_tokens - before.spec_accepted_tokens
    verified = after.spec_verify_steps - before.spec_verify_steps
    assert accepted >= 4, (drafted, accepted)  # it repeats its prompt for a while: drafts are taken
    # The probation's tokens came from one-token steps, every later one from a verify call.
    assert after.decode_steps - before.decode_steps == PROBATION
    assert verified + accepted == len(eight) - 1 - PROBATION
    assert one == three == eight
    assert _speculated(prompt, eight) == range(PROBATION + 1, len(eight))  # it never gave up
    assert eight == _by_hand(smollm_path, prompt, eight, _speculated(prompt, eight))


def test_seeded_sampling_with_speculation_reproduces_at_any_draft_length(smollm_path, monkeypatch) -> None:
    # Sampled, SmolLM2 soon stops repeating the list, and the row would give up speculating after its probation
    # (the last test): it speculates from its first step here and never gives up, so that drafts count throughout.
    monkeypatch.setattr(speculation, "GIVE_UP_AFTER", 10**6)
    engine = _engine(smollm_path, probation=0)
    prompt = engine.tokenizer.encode(REPEATING)
    try:
        before = engine.stats()
        first = _generate(engine, prompt, SEEDED, 48, 8)
        accepted = engine.stats().spec_accepted_tokens - before.spec_accepted_tokens
        again = _generate(engine, prompt, SEEDED, 48, 8)
        shorter = _generate(engine, prompt, SEEDED, 48, 2)
    finally:
        engine.close()
    assert accepted > 0
    assert _text_tokens(first) == _text_tokens(again) == _text_tokens(shorter)
    # Each token's logprobs are its own position's, whichever call computed it.
    assert [e.logprobs for e in first] == [e.logprobs for e in shorter]


def test_company_turns_speculation_off_and_a_request_may_refuse_it(smollm_path) -> None:
    engine = _engine(smollm_path, slots=3)
    prompt = engine.tokenizer.encode(REPEATING)

    async def together() -> None:
        requests = [GenerationRequest(prompt, 24, GREEDY), GenerationRequest(prompt, 24, GREEDY)]

        async def drain(request: GenerationRequest) -> None:
            async for _ in engine.generate(request):
                pass

        await asyncio.gather(*(drain(r) for r in requests))

    try:
        start = engine.stats()
        _generate(engine, prompt, GREEDY, 24, 0)  # refused by the request: one-token decode steps
        refused = engine.stats()
        asyncio.run(together())
        end = engine.stats()
    finally:
        engine.close()
    assert refused.spec_verify_steps == start.spec_verify_steps
    assert refused.decode_steps - start.decode_steps == 23
    # Two rows: both decode in one batched step while together (the one left alone at the end may speculate).
    assert end.decode_steps > refused.decode_steps


@pytest.fixture(scope="module")
def qwen_path() -> Path:
    if not (QWEN / ".complete").exists():
        pytest.fail(f"model {QWEN} is not built; run `make model` (make test does it for you)")
    return QWEN


@pytest.mark.model
def test_qwen_code_edit_speculates_and_keeps_the_greedy_reply(qwen_path) -> None:
    engine = _engine(qwen_path)
    ask = f"Rename the function to `average` and change nothing else. Reply with the whole code only.\n\n{CODE}"
    prompt = engine.tokenizer.encode(engine.tokenizer.apply_chat_template([{"role": "user", "content": ask}]))
    try:
        before = engine.stats()
        on = _generate(engine, prompt, GREEDY, 64, None)
        after = engine.stats()
        off = _generate(engine, prompt, GREEDY, 64, 0)
    finally:
        engine.close()
    accepted = after.spec_accepted_tokens - before.spec_accepted_tokens
    assert accepted > (len(on) - PROBATION) // 2, accepted  # most of the reply is the prompt's code
    tokens = _text_tokens(on)
    assert _speculated(prompt, tokens) == range(PROBATION + 1, len(tokens))  # the lookup guessed well: no give-up
    assert tokens == _by_hand(qwen_path, prompt, tokens, _speculated(prompt, tokens))
    # Against the one-token path: the same, or parted at a near-tie within what the two paths differ by here.
    reference = _one_token_reference(qwen_path, prompt, _text_tokens(off))
    assert_greedy_agrees(tokens, reference)


def _one_token_reference(path: Path, prompt: list[int], reply: list[int]) -> GreedyReference:
    """`reply` (the engine's greedy tokens without speculation) with each step's top-2 margin, and as tolerance
    SAFETY times the largest |Δ logit| between its one-token steps and the same positions run in one chunk."""
    folder = ModelFolder(path, max_model_len=1024)
    decoder = OnnxDecoder(path, folder.config, 2, 1, 1024)
    chunked = _all_logits(decoder, [*prompt, *reply], [])[len(prompt) - 1 :]
    decoder.prefill([prompt], 0)
    stepped = [decoder.prefill([prompt], 0)[0].astype(np.float32)]
    for i, token in enumerate(reply[:-1]):
        stepped.append(decoder.decode([token], [len(prompt) + i])[0].astype(np.float32).copy())
    margins = [float(np.diff(np.partition(row, -2)[-2:])[0]) for row in stepped]
    tolerance = SAFETY * max(float(np.max(np.abs(a - b))) for a, b in zip(stepped, chunked, strict=False))
    return GreedyReference(reply, margins, folder.tokenizer.decode, tolerance)


OPEN_CHAT = "Write a short poem about autumn leaves and the first frost."


def test_a_row_the_lookup_keeps_missing_gives_up_after_the_same_token_at_any_draft_length(smollm_path) -> None:
    """Open chat: the lookup's first guess is seldom the next token, so the row never starts speculating, or stops
    soon after, and decodes one token a step. Where it stopped follows from the tokens alone, and the reply is
    compared exactly with a decoder run that way by hand."""
    engine = _engine(smollm_path)
    tokenizer = engine.tokenizer
    prompt = tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": OPEN_CHAT}]))
    try:
        before = engine.stats()
        reply = _text_tokens(_generate(engine, prompt, GREEDY, 64, 8))
        after = engine.stats()
        shorter = _text_tokens(_generate(engine, prompt, GREEDY, 64, 2))
        sampled = [_generate(engine, prompt, SEEDED, 64, n) for n in (8, 2)]
        end = engine.stats()
    finally:
        engine.close()
    assert after.spec_rows_given_up - before.spec_rows_given_up == 1
    assert end.spec_rows_given_up - after.spec_rows_given_up == 3  # the greedy at 2, both sampled
    assert _text_tokens(sampled[0]) == _text_tokens(sampled[1])
    assert [e.logprobs for e in sampled[0]] == [e.logprobs for e in sampled[1]]
    assert shorter == reply  # the same token ends speculation whatever the draft length
    speculated = _speculated(prompt, reply)
    assert speculated.stop < len(reply) - 8, (speculated, len(reply))  # enough one-token steps after it to tell
    assert after.decode_steps - before.decode_steps == len(reply) - 1 - len(speculated)
    verified = after.spec_verify_steps - before.spec_verify_steps
    assert (verified > 0) == (len(speculated) > 0)
    assert reply == _by_hand(smollm_path, prompt, reply, speculated)
