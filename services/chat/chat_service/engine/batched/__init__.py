"""The batched engine: continuous batching on onnxruntime (scheduler, KV slots, prefix cache)."""
