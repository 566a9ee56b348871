"""llguidance's tokenizer is built the first time a request needs it, once, however many need it at that moment:
in process on the real SmolLM2 vocabulary, and through a fresh chat service that has served nothing before."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import llguidance
import pytest
from chat_service.engine.vocabulary import Vocabulary
from chat_testing import ChatServer
from tokenizers import Tokenizer

MODEL_ID = "smollm2-135m-instruct"
VOCAB = 49152
EOS = 2
BUILT = "llguidance tokenizer of"  # the log line of a build (chat_service.engine.vocabulary)
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_concurrent_first_uses_build_one_tokenizer_and_read_the_right_bytes(smollm_path, monkeypatch) -> None:
    builds: list[object] = []
    real = llguidance.LLTokenizer

    def counted(*args, **kwargs):
        builds.append(real(*args, **kwargs))
        return builds[-1]

    monkeypatch.setattr(llguidance, "LLTokenizer", counted)
    vocabulary = Vocabulary(smollm_path / "tokenizer.json", VOCAB, {EOS})
    assert builds == []  # nothing built at load

    text = "Bonjour, ça va? 42 €"
    ids = Tokenizer.from_file(str(smollm_path / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    barrier = threading.Barrier(8)

    def first_use(i: int) -> tuple[object, bytes]:
        barrier.wait()  # all at once: half ask for token bytes first (logprobs), half for the tokenizer (a grammar)
        tokenizer = vocabulary.guidance_tokenizer if i % 2 else None
        joined = b"".join(vocabulary.token_bytes(t) for t in ids)
        return tokenizer or vocabulary.guidance_tokenizer, joined

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(first_use, range(8)))
    assert len(builds) == 1
    assert all(tokenizer is builds[0] for tokenizer, _ in results)
    assert all(joined.decode("utf-8") == text for _, joined in results)


@pytest.fixture(scope="module")
def fresh_server(smollm_path):
    """A service of its own: the shared one may already have built the tokenizer for another test."""
    server = ChatServer(smollm_path, CHAT_MAX_CONCURRENCY="4").start()
    yield server
    server.stop()


def test_logprobs_and_guided_decoding_work_when_the_tokenizer_is_built_late(fresh_server) -> None:
    assert BUILT not in fresh_server.logs()  # loaded and ready without it
    client = fresh_server.client()
    ask = [{"role": "user", "content": "Describe Bob, who is 30, as JSON."}]
    person_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}

    def chat_with_logprobs(seed: int):
        return client.chat.completions.create(
            model=MODEL_ID, messages=ask, logprobs=True, top_logprobs=3, max_tokens=24, seed=seed, temperature=1.0
        )

    def guided(seed: int):
        return client.chat.completions.create(
            model=MODEL_ID, messages=ask, response_format=person_format, max_tokens=60, seed=seed, temperature=1.0
        )

    def completion_with_logprobs(seed: int):
        return client.completions.create(
            model=MODEL_ID, prompt="The capital of France is", logprobs=2, max_tokens=12, seed=seed, temperature=1.0
        )

    calls = [chat_with_logprobs, guided, completion_with_logprobs, chat_with_logprobs, guided, guided]
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call, seed) for seed, call in enumerate(calls)]
        responses = [future.result() for future in futures]

    for call, response in zip(calls, responses, strict=True):
        choice = response.choices[0]
        if call is guided:
            assert choice.finish_reason == "stop"
            jsonschema.validate(json.loads(choice.message.content), PERSON)
        elif call is chat_with_logprobs:
            entries = choice.logprobs.content
            assert entries and b"".join(bytes(e.bytes) for e in entries).decode("utf-8") == choice.message.content
            assert all(len(e.top_logprobs) == 3 and all(t.bytes for t in e.top_logprobs) for e in entries)
        else:
            assert "".join(choice.logprobs.tokens) == choice.text
            assert all(len(top) >= 1 for top in choice.logprobs.top_logprobs)
    assert fresh_server.logs().count(BUILT) == 1
