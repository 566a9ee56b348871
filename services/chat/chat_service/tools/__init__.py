"""Tool calling: the tools in the prompt, the grammar that forces a call, the readers of replies' calls."""
