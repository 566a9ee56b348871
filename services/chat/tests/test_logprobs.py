"""logprobs on the real SmolLM2 model through the OpenAI SDK, checked against the plain engine's own logits."""

from __future__ import annotations

import numpy as np
import onnxruntime_genai as og
import openai
import pytest
from tokenizers import Tokenizer

MODEL_ID = "smollm2-135m-instruct"
MESSAGES = [{"role": "user", "content": "Name a fruit and say why it is good, in French with accents."}]


def _gpt2_byte_alphabet() -> dict[str, int]:
    """Byte-level BPE writes each byte as a printable character; this undoes it."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {chr(c): b for b, c in chars.items()}


@pytest.fixture(scope="module")
def ids_by_bytes(smollm_path) -> dict[bytes, int]:
    """Token bytes → id, from tokenizer.json through the `tokenizers` library (independent of the server's code)."""
    hf = Tokenizer.from_file(str(smollm_path / "tokenizer.json"))
    alphabet = _gpt2_byte_alphabet()
    special = {t.content for t in hf.get_added_tokens_decoder().values()}
    return {bytes(alphabet[ch] for ch in piece): i for piece, i in hf.get_vocab().items() if piece not in special}


def _reference(plain, prompt: str, tokens: list[int], temperature: float) -> list[np.ndarray]:
    """log softmax(logits / T) of the plain ONNX Runtime GenAI loop at each step, fed `tokens`."""
    ids = plain.encode(prompt)
    params = og.GeneratorParams(plain.model)
    params.set_search_options(max_length=len(ids) + len(tokens) + 1)
    generator = og.Generator(plain.model, params)
    generator.append_tokens(np.asarray(ids, dtype=np.int32))
    out = []
    for token in tokens:
        logits = generator.get_logits().reshape(-1).astype(np.float64) / temperature
        logits -= logits.max()
        out.append(logits - np.log(np.exp(logits).sum()))
        generator.append_tokens(np.asarray([token], dtype=np.int32))
    return out


def _check_entries(entries, content: str, top: int) -> None:
    assert "".join(e.token for e in entries) == content
    assert b"".join(bytes(e.bytes) for e in entries).decode("utf-8") == content
    for entry in entries:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == top
        assert all(t.logprob <= 0 and t.bytes is not None for t in entry.top_logprobs)
        assert [t.logprob for t in entry.top_logprobs] == sorted((t.logprob for t in entry.top_logprobs), reverse=True)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_chat_logprobs_are_the_real_logits_after_temperature(
    client: openai.OpenAI, plain, ids_by_bytes, temperature: float
) -> None:
    response = client.chat.completions.create(
        model=MODEL_ID,
        messages=MESSAGES,
        temperature=temperature,
        seed=11,
        max_tokens=40,
        logprobs=True,
        top_logprobs=5,
    )
    choice = response.choices[0]
    entries = choice.logprobs.content
    _check_entries(entries, choice.message.content, 5)
    tokens = [ids_by_bytes[bytes(e.bytes)] for e in entries]
    # Greedy reports the unscaled distribution (temperature 1), as OpenAI does at temperature 0.
    reference = _reference(plain, plain.chat_prompt(MESSAGES), tokens, temperature or 1.0)
    for entry, token, ref in zip(entries, tokens, reference, strict=True):
        assert entry.logprob == pytest.approx(ref[token], abs=2e-3)
        best = np.argsort(-ref)[:5]
        assert [t.logprob for t in entry.top_logprobs] == pytest.approx(list(ref[best]), abs=2e-3)
        if temperature == 0.0:
            assert entry.top_logprobs[0].bytes == entry.bytes  # greedy takes the most likely token


@pytest.mark.parametrize("top", [0, 20])
def test_streaming_carries_logprobs_in_each_chunk(client: openai.OpenAI, top: int) -> None:
    kwargs = dict(model=MODEL_ID, messages=MESSAGES, temperature=0, max_tokens=30, logprobs=True, top_logprobs=top)
    full = client.chat.completions.create(**kwargs).choices[0]
    chunks = [c for c in client.chat.completions.create(stream=True, **kwargs) if c.choices]
    content_chunks = [c for c in chunks if c.choices[0].delta.content]
    assert content_chunks and all(c.choices[0].logprobs.content for c in content_chunks)
    for c in content_chunks:  # each chunk's tokens are its own text
        assert "".join(e.token for e in c.choices[0].logprobs.content) == c.choices[0].delta.content
    entries = [e for c in chunks if c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    _check_entries(entries, full.message.content, top)
    assert [e.model_dump() for e in entries] == [e.model_dump() for e in full.logprobs.content]


def test_stop_string_keeps_tokens_aligned_with_the_content(client: openai.OpenAI) -> None:
    kwargs = dict(model=MODEL_ID, messages=MESSAGES, temperature=0, max_tokens=40, logprobs=True, top_logprobs=1)
    full = client.chat.completions.create(**kwargs).choices[0].message.content
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    choice = client.chat.completions.create(stop=[stop], **kwargs).choices[0]
    assert choice.finish_reason == "stop" and choice.message.content == full[: full.index(stop)]
    _check_entries(choice.logprobs.content, choice.message.content, 1)


def test_no_logprobs_unless_asked(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model=MODEL_ID, messages=MESSAGES, max_tokens=3)
    assert response.choices[0].logprobs is None


def test_completions_logprobs(client: openai.OpenAI) -> None:
    response = client.completions.create(
        model=MODEL_ID, prompt="The three primary colours are", max_tokens=12, temperature=0, logprobs=3
    )
    choice = response.choices[0]
    lp = choice.logprobs
    assert "".join(lp.tokens) == choice.text
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert all(v <= 0 for v in lp.token_logprobs)
    assert all(
        len(top) == 3 and max(top.values()) == pytest.approx(v, abs=1e-6)
        for top, v in zip(lp.top_logprobs, lp.token_logprobs, strict=True)
    )
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    chunks = list(
        client.completions.create(
            model=MODEL_ID,
            prompt="The three primary colours are",
            max_tokens=12,
            temperature=0,
            logprobs=3,
            stream=True,
        )
    )
    streamed = [t for c in chunks for ch in c.choices if ch.logprobs for t in ch.logprobs.tokens]
    assert streamed == lp.tokens


@pytest.mark.parametrize(
    ("path", "extra", "param"),
    [
        ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("/v1/chat/completions", {"top_logprobs": 2}, "top_logprobs"),
        ("/v1/chat/completions", {"logprobs": 3}, "logprobs"),
        ("/v1/completions", {"logprobs": 21}, "logprobs"),
        ("/v1/completions", {"logprobs": -1}, "logprobs"),
    ],
)
def test_logprobs_refusals(chat_server, path: str, extra: dict, param: str) -> None:
    import httpx

    body = {"model": MODEL_ID, "max_tokens": 2, **extra}
    body.update({"messages": MESSAGES} if "chat" in path else {"prompt": "Hi"})
    response = httpx.post(chat_server.base_url + path, json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_characters_split_across_tokens(client: openai.OpenAI) -> None:
    """A character made of several tokens: the partial ones carry empty text but their bytes; nothing is lost."""
    response = client.chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Draw a cat."}],
        temperature=0,
        max_tokens=12,
        logprobs=True,
        top_logprobs=2,
        extra_body={"guided_regex": "(😺|🐈){3}"},
    )
    choice = response.choices[0]
    entries = choice.logprobs.content
    assert len(choice.message.content) == 3 and len(entries) > 3
    assert any(e.token == "" and e.bytes for e in entries)
    _check_entries(entries, choice.message.content, 2)
