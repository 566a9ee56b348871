"""CHAT_ENGINE=batched|generator|auto on real model folders: the batched engine refuses a graph it cannot run
with one line that names the file and what does not fit, before any weights load; auto serves it on the generator
engine and says so; /v1/models names each model's engine."""

from __future__ import annotations

import json
import logging
import shutil
import struct
from pathlib import Path

import pytest
from chat_service.__main__ import _check
from chat_service.engine.batched.graph import check_batched_graph, graph_inputs
from chat_service.engine.types import EngineLoadError
from chat_service.main import create_app
from chat_service.models.pool import load_engine
from chat_service.settings import ChatSettings
from fastapi.testclient import TestClient


def _unshared_copy(smollm_path: Path, tmp_path: Path) -> Path:
    """SmolLM2 with genai_config saying past and present KV do not share a buffer: a graph the batched engine
    cannot bind in place."""
    folder = tmp_path / "unshared"
    folder.mkdir()
    for item in smollm_path.iterdir():
        if item.name != "genai_config.json":
            (folder / item.name).symlink_to(item)
    config = json.loads((smollm_path / "genai_config.json").read_text())
    config["search"]["past_present_share_buffer"] = False
    (folder / "genai_config.json").write_text(json.dumps(config))
    return folder


def test_smollm2_graph_inputs_are_read_without_the_weights(smollm_path: Path) -> None:
    inputs = graph_inputs(smollm_path / "model.onnx")
    assert inputs["input_ids"] == inputs["attention_mask"] == 7  # int64
    assert {inputs[f"past_key_values.{i}.{kind}"] for i in range(30) for kind in ("key", "value")} == {1}  # float32
    assert len(inputs) == 2 + 2 * 30


def test_batched_refuses_a_graph_it_cannot_run_in_one_line(smollm_path: Path, tmp_path: Path) -> None:
    folder = _unshared_copy(smollm_path, tmp_path)
    settings = ChatSettings(model_path=folder, engine="batched", data_dir=tmp_path / "data")
    with pytest.raises(EngineLoadError) as refused:
        load_engine(folder, settings)
    message = str(refused.value)
    assert "\n" not in message and str(folder / "model.onnx") in message
    assert "past_present_share_buffer" in message
    with pytest.raises(EngineLoadError, match="past_present_share_buffer"):
        _check(settings)  # python -m chat_service stops here, before the app loads any weights


def test_auto_serves_such_a_graph_on_the_generator_engine_and_says_so(
    smollm_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _unshared_copy(smollm_path, tmp_path)
    settings = ChatSettings(model_path=folder, model_id="smol", engine="auto", data_dir=tmp_path / "data")
    _check(settings)  # auto: nothing to refuse
    with caplog.at_level(logging.INFO), TestClient(create_app(settings)) as http:
        card = http.get("/v1/models").json()["data"][0]
        reply = http.post("/v1/completions", json={"model": "smol", "prompt": "The sky is", "max_tokens": 3})
    assert (card["id"], card["engine"]) == ("smol", "generator")
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 3
    logs = [record.getMessage() for record in caplog.records]
    assert any("past_present_share_buffer" in line and "CHAT_ENGINE=auto" in line for line in logs), logs
    assert any(line.startswith("loaded smol ") and "generator engine" in line for line in logs), logs


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = b""
    while value > 0x7F:
        out += struct.pack("B", value & 0x7F | 0x80)
        value >>= 7
    return out + struct.pack("B", value)


def _graph_file(path: Path, inputs: dict[str, int]) -> None:
    """A ModelProto holding only a graph with these inputs (name → element type), in onnx.proto's wire format."""
    values = b"".join(
        _field(11, _field(1, name.encode()) + _field(2, _field(1, _varint(1 << 3) + _varint(elem))))
        for name, elem in inputs.items()
    )
    path.write_bytes(_varint(1 << 3) + _varint(8) + _field(7, _field(2, b"graph") + values))  # ir_version 8


def test_a_float16_kv_graph_is_refused_by_name(smollm_path: Path, tmp_path: Path) -> None:
    config = json.loads((smollm_path / "genai_config.json").read_text())
    config["model"]["decoder"]["num_hidden_layers"] = 2
    layers = {f"past_key_values.{i}.{kind}": 10 for i in range(2) for kind in ("key", "value")}  # float16
    _graph_file(tmp_path / "model.onnx", {"input_ids": 7, "attention_mask": 7, **layers})
    with pytest.raises(EngineLoadError, match=r"past KV inputs are float16; the engine's KV cache is float32"):
        check_batched_graph(tmp_path, config)
    _graph_file(tmp_path / "model.onnx", {"input_ids": 7, "attention_mask": 7, "position_ids": 7, **layers})
    with pytest.raises(EngineLoadError, match="inputs position_ids that it does not feed"):
        check_batched_graph(tmp_path, config)
    shutil.copy(smollm_path / "model.onnx", tmp_path / "model.onnx")  # 30 layers, where the config says 2
    with pytest.raises(EngineLoadError, match=r"inputs past_key_values\.10\.key, .* and 52 more that it does not feed"):
        check_batched_graph(tmp_path, config)
