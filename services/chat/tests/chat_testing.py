"""Test helpers: the chat service as a real uvicorn process, and a tokenizer for the fake engines."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import openai
from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.model_folder import ModelFolder
from ortserve_common.models_dir import models_dir
from ortserve_testing.numerics import SAFETY
from ortserve_testing.plain_engine import PlainGenerator
from ortserve_testing.processes import ServiceProcess, free_port

MODELS_DIR = models_dir()
SMOLLM = MODELS_DIR / "smollm2-135m-instruct"
PHI3_TINY = MODELS_DIR / "phi3-tiny"
MODEL_ID = "smollm2-135m-instruct"
ROW_PROMPTS = [
    "Once upon a time, in a land far away,",
    "def fibonacci(n):",
    "The three primary colours are",
    "1, 2, 3,",
]


class ChatServer(ServiceProcess):
    """`python -m chat_service` in a subprocess, as `make run` starts it, with one difference: its KV cache is the
    graph's float32 unless `CHAT_KV_CACHE_DTYPE` is given. The suite holds the service to the plain ONNX Runtime
    GenAI loop token for token, and only a float32 cache computes what that loop does; the service's float16 default
    is tested in test_half_kv.py. An env value of None leaves that variable unset (the service's default)."""

    def __init__(self, model_path: Path, **env: str | None) -> None:
        port = free_port()
        tmp = Path(os.environ.get("PYTEST_TMPDIR", "/tmp"))
        environment = {
            "CHAT_KV_CACHE_DTYPE": "float32",
            **os.environ,
            "CHAT_DATA_DIR": str(tmp / f"chat-data-{port}"),
            "CHAT_MODEL_PATH": str(model_path),
            "CHAT_PORT": str(port),
            "CHAT_HOST": "127.0.0.1",
        }
        for name, value in env.items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        log_path = tmp / f"chat-{port}.log"
        super().__init__("chat_service", port, environment, log_path)

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)


def row_tolerance(model_path: Path, plain: PlainGenerator, steps: int = 16) -> float:
    """How far this CPU's kernels move a decode row's logits between running it alone and beside three other rows:
    the largest |Δ logit| over `steps` teacher-forced steps of four prompts, times numerics.SAFETY (0 where the
    kernels are row-count-invariant, as on AVX-512 VNNI; docs/ENGINE_DESIGNS.md, "Numerics by CPU")."""
    folder = ModelFolder(model_path, max_model_len=256)
    decoder = OnnxDecoder(model_path, folder.config, 2, 4, 256)
    prompts = [plain.encode(p) for p in ROW_PROMPTS]
    tokens = [plain.greedy(p, steps) for p in ROW_PROMPTS]
    steps = min(len(t) for t in tokens)  # a reference may end early at end-of-sequence

    def run(rows: int) -> list[np.ndarray]:
        for slot in range(rows):
            decoder.prefill([prompts[slot]], slot)
        lengths, first = [len(p) for p in prompts[:rows]], []
        for step in range(steps - 1):
            logits = decoder.decode([tokens[r][step] for r in range(rows)], lengths)
            first.append(logits[0].astype(np.float32).copy())
            lengths = [n + 1 for n in lengths]
        return first

    alone, beside = run(1), run(4)
    return SAFETY * max(float(np.max(np.abs(a - b))) for a, b in zip(alone, beside, strict=True))


def several_rows_invariant(model_path: Path, plain: PlainGenerator) -> bool:
    """Whether a decode row's logits stay the same, bit for bit, beside one, two or three other rows: what
    CHAT_BATCH_INVARIANT relies on (it never runs a row alone, so only several-row steps remain)."""
    folder = ModelFolder(model_path, max_model_len=256)
    decoder = OnnxDecoder(model_path, folder.config, 2, 4, 256)
    prompts = [plain.encode(p) for p in ROW_PROMPTS]
    for slot, prompt in enumerate(prompts):
        decoder.prefill([prompt], slot)
    # Each call feeds every row the same token at the same position, so only the company changes between calls.
    tokens, lengths = [p[-1] for p in prompts], [len(p) for p in prompts]
    two, three, four = (decoder.decode(tokens[:n], lengths[:n])[:n].copy() for n in (2, 3, 4))
    return bool(np.array_equal(two[:2], three[:2]) and np.array_equal(three, four[:3]))


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


__all__ = ["CharTokenizer", "ChatServer", "PlainGenerator", "row_tolerance", "several_rows_invariant"]
