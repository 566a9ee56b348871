"""`python -m chat_service`: check the model folder, then serve (the model loads before the port opens)."""

from __future__ import annotations

import sys

from ortserve_common.server import run_service

from chat_service.engine.ort_genai import check_model_folder
from chat_service.engine.types import EngineLoadError
from chat_service.main import create_app
from chat_service.settings import ChatSettings


def _check(settings: ChatSettings) -> None:
    check_model_folder(settings.model_path)


def main() -> int:
    return run_service("chat", ChatSettings, _check, create_app, (EngineLoadError,))


if __name__ == "__main__":
    sys.exit(main())
