"""Chat and text completions on ONNX Runtime GenAI."""
