"""The generation engines, which know nothing of HTTP: batched (continuous batching on onnxruntime, the default) and
generator (one ONNX Runtime GenAI Generator per request)."""

from chat_service.engine.types import EngineLoadError, FinishReason, GenerationRequest, SamplingParams, TokenEvent

__all__ = ["EngineLoadError", "FinishReason", "GenerationRequest", "SamplingParams", "TokenEvent"]
