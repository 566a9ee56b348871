"""`python -m chat_service`: check the model folder, then serve (the model loads before the port opens)."""

from __future__ import annotations

import logging
import sys

from ortserve_common.logs import configure_logging
from ortserve_common.server import serve
from pydantic import ValidationError

from chat_service.engine.ort_genai import check_model_folder
from chat_service.engine.types import EngineLoadError
from chat_service.main import create_app
from chat_service.settings import ChatSettings

logger = logging.getLogger("chat_service")


def main() -> int:
    try:
        settings = ChatSettings()
    except ValidationError as exc:
        configure_logging("INFO", "chat")
        logger.error("invalid CHAT_* settings: %s", exc.errors(include_url=False))
        return 2
    configure_logging(settings.log_level, "chat")
    try:
        check_model_folder(settings.model_path)
    except EngineLoadError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    serve(create_app(settings), settings.host, settings.port)  # SIGTERM drains: see ortserve_common.server
    return 0


if __name__ == "__main__":
    sys.exit(main())
