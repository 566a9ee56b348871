"""`python -m embeddings_service`: check the model folders, then serve (the models load before the port opens)."""

from __future__ import annotations

import sys

from ortserve_common.server import run_service

from embeddings_service.engine.loader import inspect_folder
from embeddings_service.engine.types import EngineLoadError
from embeddings_service.main import create_app
from embeddings_service.settings import EmbedSettings


def _check(settings: EmbedSettings) -> None:
    for entry in settings.models:
        inspect_folder(entry.path, entry.kind, entry.max_length)


def main() -> int:
    return run_service("embeddings", EmbedSettings, _check, create_app, (EngineLoadError,))


if __name__ == "__main__":
    sys.exit(main())
