"""The Responses API on the chat pipeline: its input, output items and stream events."""
