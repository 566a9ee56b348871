"""Startup on a bad model path, the models and health endpoints, and the Phi-3 template on the tiny Phi-3 model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest
from chat_testing import ChatServer, PlainGenerator


def _start(path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHAT_MODEL_PATH": str(path), "CHAT_PORT": "1"}
    return subprocess.run([sys.executable, "-m", "chat_service"], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.model  # starts a service process of its own
def test_missing_model_path_exits_with_one_clear_line(tmp_path) -> None:
    result = _start(tmp_path / "no-such-model")
    assert result.returncode != 0
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert str(tmp_path / "no-such-model") in errors[0]["message"]
    assert "genai_config.json" in errors[0]["message"] and "tokenizer.json" in errors[0]["message"]


def test_folder_without_onnx_file_names_what_is_missing(tmp_path, smollm_path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(smollm_path / "genai_config.json", broken)
    result = _start(broken)
    assert result.returncode != 0
    assert "model.onnx" in result.stderr and str(broken) in result.stderr


def test_models_health_ready(chat_server) -> None:
    models = httpx.get(chat_server.base_url + "/v1/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["smollm2-135m-instruct"]
    card = httpx.get(chat_server.base_url + "/v1/models/smollm2-135m-instruct").json()
    assert card["object"] == "model" and card["owned_by"]
    assert httpx.get(chat_server.base_url + "/health").json() == {"status": "ok"}
    assert httpx.get(chat_server.base_url + "/ready").status_code == 200


PHI3_MESSAGES = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hello"}]
PHI3_PROMPT = "<|system|>\nBe terse.<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\n"


def test_phi3_template_on_tiny_phi3(phi3_path) -> None:
    plain = PlainGenerator(phi3_path)
    assert plain.chat_prompt(PHI3_MESSAGES) == PHI3_PROMPT
    server = ChatServer(phi3_path, CHAT_MODEL_ID="phi-3.5-mini", CHAT_MAX_MODEL_LEN="4096").start()
    try:
        client = server.client()
        response = client.chat.completions.create(
            model="phi-3.5-mini", messages=PHI3_MESSAGES, temperature=0, max_tokens=8
        )
        assert response.usage.prompt_tokens == len(plain.encode(PHI3_PROMPT))
        expected = plain.greedy(PHI3_PROMPT, max_tokens=8)
        assert response.usage.completion_tokens == len(expected)
    finally:
        server.stop()


def test_phi3_fallback_when_folder_has_no_template(phi3_path, tmp_path) -> None:
    bare = tmp_path / "phi3-no-template"
    shutil.copytree(phi3_path, bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((bare / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(config))
    server = ChatServer(bare, CHAT_MODEL_ID="phi-3.5-mini", CHAT_MAX_MODEL_LEN="4096").start()
    try:
        response = server.client().chat.completions.create(model="phi-3.5-mini", messages=PHI3_MESSAGES, max_tokens=1)
        assert response.usage.prompt_tokens == len(PlainGenerator(phi3_path).encode(PHI3_PROMPT))
    finally:
        server.stop()
