"""The request pipeline behind the routes: chat, completions, tokenize and prompt templates on an engine."""
