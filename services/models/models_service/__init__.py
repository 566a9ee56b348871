"""The model registry: which models exist, which are live and where, API keys, and runtime load/unload."""
