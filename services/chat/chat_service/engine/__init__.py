"""The generation engine: ONNX Runtime GenAI behind an async interface. Knows nothing of HTTP."""

from chat_service.engine.types import EngineLoadError, FinishReason, GenerationRequest, SamplingParams, TokenEvent

__all__ = ["EngineLoadError", "FinishReason", "GenerationRequest", "SamplingParams", "TokenEvent"]
