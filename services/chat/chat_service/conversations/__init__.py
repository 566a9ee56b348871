"""Conversations, their items, and the stored state (store/: conversations, responses, templates)."""
