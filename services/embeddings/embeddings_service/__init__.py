"""Embeddings and rerank on plain ONNX Runtime (encoders) and ONNX Runtime GenAI (LLM hidden states)."""
