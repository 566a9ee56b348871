"""What the batched engine needs of a decoder graph, checked before its session opens (and its weights load).

The graph's inputs and their element types are read from the .onnx file's protobuf directly: the weights sit in
the external data file, so this reads the small graph file only (it was written before the engine used the `onnx`
package, for gathered_logits.py's rewrite, and needs nothing more).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chat_service.engine.types import EngineLoadError

# onnx.TensorProto.DataType values that may appear on a decoder's inputs.
ELEMENT_TYPES = {1: "float32", 6: "int32", 7: "int64", 10: "float16", 11: "float64", 16: "bfloat16"}

# Field numbers in onnx.proto: ModelProto.graph, GraphProto.input, ValueInfoProto.name and .type,
# TypeProto.tensor_type, TypeProto.Tensor.elem_type.
_MODEL_GRAPH, _GRAPH_INPUT, _VALUE_NAME, _VALUE_TYPE, _TYPE_TENSOR, _TENSOR_ELEM = 7, 11, 1, 2, 1, 1


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of one protobuf message: an int for varints, bytes for length-delimited fields."""
    fields: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            fields.append((number, value))
        elif wire == 2:
            size, at = _varint(data, at)
            fields.append((number, data[at : at + size]))
            at += size
        elif wire in (1, 5):  # fixed 64 and 32 bits: nothing this reader needs
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return fields


def _message(fields: list[tuple[int, int | bytes]], number: int) -> bytes:
    return next((value for n, value in fields if n == number and isinstance(value, bytes)), b"")


def graph_inputs(onnx_path: Path) -> dict[str, int]:
    """Each graph input's name and element type (an onnx.TensorProto.DataType value; 0 if not a tensor)."""
    graph = _fields(_message(_fields(onnx_path.read_bytes()), _MODEL_GRAPH))
    inputs: dict[str, int] = {}
    for number, value in graph:
        if number != _GRAPH_INPUT or not isinstance(value, bytes):
            continue
        info = _fields(value)
        tensor = _fields(_message(_fields(_message(info, _VALUE_TYPE)), _TYPE_TENSOR))
        elem = next((v for n, v in tensor if n == _TENSOR_ELEM and isinstance(v, int)), 0)
        inputs[_message(info, _VALUE_NAME).decode()] = elem
    return inputs


def input_names(decoder: dict[str, Any]) -> tuple[str, str, list[tuple[str, str]]]:
    """(input ids, attention mask, [(past key, past value) per layer]) as genai_config's decoder names them."""
    names = decoder.get("inputs", {})
    past = [
        (
            names.get("past_key_names", "past_key_values.%d.key") % i,
            names.get("past_value_names", "past_key_values.%d.value") % i,
        )
        for i in range(int(decoder["num_hidden_layers"]))
    ]
    return names.get("input_ids", "input_ids"), names.get("attention_mask", "attention_mask"), past


def _some(names: set[str]) -> str:
    """A few names, so the error stays one readable line."""
    listed = sorted(names)
    return ", ".join(listed[:4]) + (f" and {len(listed) - 4} more" if len(listed) > 4 else "")


def check_batched_graph(model_path: Path, genai_config: dict[str, Any]) -> None:
    """Raise EngineLoadError, one line naming the file and what does not fit, unless the batched engine can run the
    decoder: past and present KV sharing one buffer, exactly the inputs it feeds, and float32 KV (its cache's type)."""
    decoder = genai_config["model"]["decoder"]
    onnx_path = model_path / decoder["filename"]
    if not genai_config.get("search", {}).get("past_present_share_buffer", False):
        raise EngineLoadError(
            f"{onnx_path} does not fit the batched engine: genai_config.json's search.past_present_share_buffer is "
            "not true (the engine binds one KV buffer as both past and present)"
        )
    try:
        inputs = graph_inputs(onnx_path)
    except (OSError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise EngineLoadError(f"{onnx_path} could not be read as an ONNX graph: {exc}") from exc
    ids, mask, past = input_names(decoder)
    expected = {ids, mask, *(name for pair in past for name in pair)}
    if set(inputs) != expected:
        extra, missing = _some(set(inputs) - expected), _some(expected - set(inputs))
        parts = ([f"inputs {extra} that it does not feed"] if extra else []) + (
            [f"no inputs {missing}"] if missing else []
        )
        raise EngineLoadError(
            f"{onnx_path} does not fit the batched engine: the graph has {' and '.join(parts)} (it feeds {ids}, "
            f"{mask} and the past KV)"
        )
    kv_types = {ELEMENT_TYPES.get(inputs[name], str(inputs[name])) for pair in past for name in pair}
    if kv_types != {"float32"}:
        raise EngineLoadError(
            f"{onnx_path} does not fit the batched engine: its past KV inputs are {', '.join(sorted(kv_types))}; "
            "the engine's KV cache is float32"
        )
