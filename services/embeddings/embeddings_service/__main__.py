"""`python -m embeddings_service`: check the model folders, then serve (the models load before the port opens)."""

from __future__ import annotations

import logging
import sys

from ortserve_common.logs import configure_logging
from ortserve_common.server import serve
from pydantic import ValidationError

from embeddings_service.engine.loader import inspect_folder
from embeddings_service.engine.types import EngineLoadError
from embeddings_service.main import create_app
from embeddings_service.settings import EmbedSettings

logger = logging.getLogger("embeddings_service")


def main() -> int:
    try:
        settings = EmbedSettings()
    except ValidationError as exc:
        configure_logging("INFO", "embeddings")
        logger.error("invalid EMBED_* settings: %s", exc.errors(include_url=False))
        return 2
    configure_logging(settings.log_level, "embeddings")
    try:
        for entry in settings.models:
            inspect_folder(entry.path, entry.kind, entry.max_length)
    except EngineLoadError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    serve(create_app(settings), settings.host, settings.port)  # SIGTERM drains: see ortserve_common.server
    return 0


if __name__ == "__main__":
    sys.exit(main())
