"""A GenAI model folder opened for what serving needs before any weights: its genai_config, context length and the
tokenizer with the chat template. The continuous-batching engine runs the weights in its own onnxruntime session,
so it opens the folder this way and the weights are in memory once (an og.Model would load them a second time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnxruntime_genai as og

from chat_service.engine.tokenizer import ModelTokenizer
from chat_service.engine.types import EngineLoadError


def check_model_folder(path: Path) -> dict[str, Any]:
    """Return genai_config.json, or raise EngineLoadError naming the path and the files an engine folder needs."""
    expected = "genai_config.json, the decoder's .onnx file (model.onnx), tokenizer.json and tokenizer_config.json"
    if not path.is_dir():
        raise EngineLoadError(
            f"model path {path} is not a folder; expected an ONNX Runtime GenAI folder with {expected}"
        )
    try:
        config = json.loads((path / "genai_config.json").read_text(encoding="utf-8"))
        onnx_name = config["model"]["decoder"]["filename"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineLoadError(
            f"model path {path} has no readable genai_config.json ({exc}); expected {expected}"
        ) from exc
    missing = [name for name in (onnx_name, "tokenizer.json", "tokenizer_config.json") if not (path / name).is_file()]
    if missing:
        raise EngineLoadError(f"model path {path} is missing {', '.join(missing)}; expected {expected}")
    return config


class ModelFolder:
    """The folder's config, context length (capped by max_model_len) and tokenizer; no weights loaded."""

    def __init__(self, model_path: Path, max_model_len: int | None) -> None:
        self.model_path = model_path
        self.config = check_model_folder(model_path)
        model_cfg = self.config["model"]
        self.context_length = int(model_cfg.get("context_length") or 2048)
        if max_model_len is not None:
            self.context_length = min(self.context_length, max_model_len)
        try:
            self.og_config = og.Config(str(model_path))
            # og.Tokenizer takes an og.Config as well as an og.Model: the tokenizer without the decoder's weights.
            self.tokenizer = ModelTokenizer(self.og_config, model_path, int(model_cfg["vocab_size"]))
        except Exception as exc:  # og raises RuntimeError with its own text; keep it, name the path
            raise EngineLoadError(f"model path {model_path} could not be loaded by ONNX Runtime GenAI: {exc}") from exc
