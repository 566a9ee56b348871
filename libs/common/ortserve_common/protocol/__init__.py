"""OpenAI wire models (requests, responses, stream chunks)."""
