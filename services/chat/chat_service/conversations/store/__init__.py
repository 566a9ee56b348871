"""The chat service's stored state: conversations and prompt templates."""
