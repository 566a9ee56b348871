"""Model folders → loaded engines. Checks a folder before loading it, so a bad path fails at start with one line
that names the path and the files expected."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ortserve_common.protocol.embeddings import InputType

from embeddings_service.engine.llm_hidden import LlmHiddenStateEmbedder
from embeddings_service.engine.onnx_encoder import CrossEncoderScorer, EncoderEmbedder
from embeddings_service.engine.tokenizer import ModelTokenizer
from embeddings_service.engine.types import BatchModel, EngineLoadError, ModelKind
from embeddings_service.prefixes import folder_prefixes

logger = logging.getLogger(__name__)

MODEL_INFO = "ortserve_model.json"
GENAI_CONFIG = "genai_config.json"
_ENCODER_FILES = "model.onnx, tokenizer.json and ortserve_model.json"
_GENAI_FILES = "genai_config.json, the decoder's .onnx file and tokenizer.json"


@dataclass(frozen=True)
class FolderInfo:
    kind: ModelKind
    max_length: int
    dimensions: int | None
    vocab_size: int | None
    config: dict[str, Any]


@dataclass
class LoadedModel:
    kind: ModelKind
    model: BatchModel
    tokenizer: ModelTokenizer
    max_length: int
    dimensions: int | None
    unsupported_reason: str | None = None  # set when the folder loads but cannot serve its kind
    prefixes: dict[InputType, str] = field(default_factory=dict)  # the folder's own table (ortserve_model.json)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EngineLoadError(f"{path} is not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise EngineLoadError(f"{path} is not a JSON object")
    return data


def _require(path: Path, names: list[str], expected: str) -> None:
    missing = [name for name in names if not (path / name).is_file()]
    if missing:
        raise EngineLoadError(f"model path {path} is missing {', '.join(missing)}; expected {expected}")


def inspect_folder(path: Path, kind: ModelKind | None, max_length: int | None) -> FolderInfo:
    """What the folder holds and how to serve it; `kind` left out is read from the folder's own files."""
    if not path.is_dir():
        raise EngineLoadError(
            f"model path {path} is not a folder; expected an encoder folder ({_ENCODER_FILES}) or an ONNX Runtime "
            f"GenAI folder ({_GENAI_FILES})"
        )
    if kind is None:
        if (path / GENAI_CONFIG).is_file():
            kind = "llm-embedding"
        elif (path / MODEL_INFO).is_file():
            kind = _read_json(path / MODEL_INFO).get("kind")
            if kind not in ("embedding", "rerank"):
                raise EngineLoadError(f"{path / MODEL_INFO} has kind {kind!r}; expected embedding or rerank")
        else:
            raise EngineLoadError(
                f"cannot tell what model path {path} holds: it has neither {MODEL_INFO} nor {GENAI_CONFIG}; "
                "set its kind in EMBED_MODELS"
            )
    if kind == "llm-embedding":
        _require(path, [GENAI_CONFIG, "tokenizer.json"], _GENAI_FILES)
        model_cfg = _read_json(path / GENAI_CONFIG).get("model", {})
        try:
            _require(path, [model_cfg["decoder"]["filename"]], _GENAI_FILES)
            limit = int(model_cfg.get("context_length") or 2048)
            return FolderInfo(
                kind,
                min(limit, max_length or limit),
                int(model_cfg["decoder"]["hidden_size"]),
                int(model_cfg["vocab_size"]),
                model_cfg,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineLoadError(f"{path / GENAI_CONFIG} lacks model.{exc} ; expected {_GENAI_FILES}") from exc
    _require(path, ["model.onnx", "tokenizer.json"], _ENCODER_FILES)
    config = _read_json(path / MODEL_INFO) if (path / MODEL_INFO).is_file() else {}
    try:
        folder_prefixes(config.get("prefixes"))
    except ValueError as exc:
        raise EngineLoadError(f"{path / MODEL_INFO}: {exc}") from exc
    limit = int(config.get("max_length") or 512)
    dimensions = config.get("dimensions")
    return FolderInfo(kind, min(limit, max_length or limit), dimensions and int(dimensions), None, config)


class ModelLoader:
    """Loads each (folder, kind, limit) once, so two ids on one folder (say, with and without a prefix table)
    share one engine and its memory."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._loaded: dict[tuple[Path, ModelKind, int], LoadedModel] = {}

    def load(self, path: Path, kind: ModelKind | None, max_length: int | None) -> LoadedModel:
        info = inspect_folder(path, kind, max_length)
        key = (path.resolve(), info.kind, info.max_length)
        if key not in self._loaded:
            self._loaded[key] = self._load(path, info)
        return self._loaded[key]

    def _load(self, path: Path, info: FolderInfo) -> LoadedModel:
        tokenizer = ModelTokenizer(path / "tokenizer.json", info.max_length, info.vocab_size)
        if info.kind == "llm-embedding":
            llm = LlmHiddenStateEmbedder(path, self.threads)
            return LoadedModel(info.kind, llm, tokenizer, info.max_length, info.dimensions, llm.unsupported_reason)
        if info.kind == "rerank":
            scorer = CrossEncoderScorer(path / "model.onnx", self.threads)
            return LoadedModel(info.kind, scorer, tokenizer, info.max_length, None)
        embedder = EncoderEmbedder(
            path / "model.onnx",
            self.threads,
            pooling=str(info.config.get("pooling", "mean")),
            normalize=bool(info.config.get("normalize", True)),
        )
        dimensions = info.dimensions or embedder.dimensions
        prefixes = folder_prefixes(info.config.get("prefixes"))
        return LoadedModel(info.kind, embedder, tokenizer, info.max_length, dimensions, prefixes=prefixes)

    def release(self, loaded: LoadedModel) -> None:
        """Forget and free one engine (its ids were unloaded)."""
        for key, value in list(self._loaded.items()):
            if value is loaded:
                del self._loaded[key]
        loaded.model.close()

    def close(self) -> None:
        for loaded in self._loaded.values():
            loaded.model.close()
        self._loaded.clear()
