"""Test helpers: the chat service as a real uvicorn process, and a tokenizer for the fake engines."""

from __future__ import annotations

import os
from pathlib import Path

import openai
from ortserve_common.models_dir import models_dir
from ortserve_testing.plain_engine import PlainGenerator
from ortserve_testing.processes import ServiceProcess, free_port

MODELS_DIR = models_dir()
SMOLLM = MODELS_DIR / "smollm2-135m-instruct"
PHI3_TINY = MODELS_DIR / "phi3-tiny"
MODEL_ID = "smollm2-135m-instruct"


class ChatServer(ServiceProcess):
    """`python -m chat_service` in a subprocess, exactly as `make run` starts it."""

    def __init__(self, model_path: Path, **env: str) -> None:
        port = free_port()
        tmp = Path(os.environ.get("PYTEST_TMPDIR", "/tmp"))
        environment = {
            **os.environ,
            "CHAT_DATA_DIR": str(tmp / f"chat-data-{port}"),
            "CHAT_MODEL_PATH": str(model_path),
            "CHAT_PORT": str(port),
            "CHAT_HOST": "127.0.0.1",
            **env,
        }
        log_path = tmp / f"chat-{port}.log"
        super().__init__("chat_service", port, environment, log_path)

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)


class CharTokenizer:
    """The tests' tokenizer: characters are tokens, and the chat template is one tag per message."""

    vocab_size = 0x110000
    vocabulary = None
    eos_token_ids: frozenset[int] = frozenset()
    template_renders_tools = False

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(map(chr, ids))

    def apply_chat_template(self, messages: list[dict], tools=None, add_generation_prompt: bool = True) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


__all__ = ["CharTokenizer", "ChatServer", "PlainGenerator"]
