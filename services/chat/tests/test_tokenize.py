"""POST /tokenize and /detokenize on the real SmolLM2 model: the ids generation uses, in text and chat modes."""

from __future__ import annotations

import httpx
import openai
import pytest

MODEL_ID = "smollm2-135m-instruct"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]


def _post(chat_server, path: str, body: dict) -> httpx.Response:
    return httpx.post(chat_server.base_url + path, json=body, timeout=30)


def test_text_mode_counts_what_completions_count(chat_server, client: openai.OpenAI, plain) -> None:
    prompt = "The three primary colours are"
    body = _post(chat_server, "/tokenize", {"model": MODEL_ID, "prompt": prompt, "return_token_strs": True}).json()
    assert body["tokens"] == plain.encode(prompt) and body["count"] == len(body["tokens"])
    assert body["max_model_len"] == 8192
    assert "".join(body["token_strs"]) == prompt
    usage = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=1).usage
    assert usage.prompt_tokens == body["count"]
    # llama-server's field name, and no model (the instance's main one).
    assert _post(chat_server, "/tokenize", {"content": prompt}).json()["tokens"] == body["tokens"]


def test_chat_mode_counts_what_chat_counts(chat_server, client: openai.OpenAI, plain) -> None:
    body = _post(chat_server, "/tokenize", {"model": MODEL_ID, "messages": MESSAGES}).json()
    assert body["tokens"] == plain.encode(plain.chat_prompt(MESSAGES))
    usage = client.chat.completions.create(model=MODEL_ID, messages=MESSAGES, max_tokens=1).usage
    assert usage.prompt_tokens == body["count"]
    without = _post(chat_server, "/tokenize", {"messages": MESSAGES, "add_generation_prompt": False}).json()
    assert body["tokens"][: without["count"]] == without["tokens"] and without["count"] < body["count"]


def test_add_special_tokens(chat_server) -> None:
    text = "<|im_start|>user\nHi"
    default = _post(chat_server, "/tokenize", {"prompt": text}).json()["tokens"]
    assert _post(chat_server, "/tokenize", {"prompt": text, "add_special_tokens": True}).json()["tokens"] == default
    # SmolLM2's tokenizer adds no BOS/EOS of its own, so the flag changes nothing here; markers in the text stay.
    assert _post(chat_server, "/tokenize", {"prompt": text, "add_special_tokens": False}).json()["tokens"] == default
    assert default[0] == 1


def test_detokenize_round_trip_keeps_special_tokens(chat_server) -> None:
    tokens = _post(chat_server, "/tokenize", {"messages": MESSAGES}).json()["tokens"]
    body = _post(chat_server, "/detokenize", {"model": MODEL_ID, "tokens": tokens}).json()
    assert body["prompt"] == body["content"]
    assert body["prompt"].startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert body["prompt"].endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/tokenize", {"prompt": "a", "messages": MESSAGES}, 400, "messages"),
        ("/tokenize", {}, 400, "prompt"),
        (
            "/tokenize",
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]},
            400,
            "messages[0].content",
        ),
        ("/tokenize", {"prompt": "a", "model": "nope"}, 404, "model"),
        ("/detokenize", {"tokens": [1, 49152]}, 400, "tokens[1]"),
        ("/detokenize", {"tokens": [-1]}, 400, "tokens[0]"),
        ("/detokenize", {"tokens": "abc"}, 400, "tokens"),
    ],
)
def test_refusals(chat_server, path: str, body: dict, status: int, param: str) -> None:
    response = _post(chat_server, path, body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
