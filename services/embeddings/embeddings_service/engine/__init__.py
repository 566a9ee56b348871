"""The models: encoders on plain onnxruntime, LLM hidden states on ONNX Runtime GenAI. Knows nothing of HTTP."""

from embeddings_service.engine.types import BatchModel, EncodedInput, EngineLoadError, ModelKind

__all__ = ["BatchModel", "EncodedInput", "EngineLoadError", "ModelKind"]
