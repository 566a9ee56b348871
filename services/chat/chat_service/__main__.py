"""`python -m chat_service`: check the models file and the model folders, then serve (the models load before the
port opens)."""

from __future__ import annotations

import sys

from ortserve_common.model_manifest import ManifestError
from ortserve_common.server import run_service

from chat_service.engine.batched.graph import check_batched_graph
from chat_service.engine.model_folder import check_model_folder
from chat_service.engine.types import EngineLoadError
from chat_service.main import create_app
from chat_service.models.catalog import ModelCatalog
from chat_service.settings import ChatSettings


def _check(settings: ChatSettings) -> None:
    for config in ModelCatalog(settings).startup():
        genai_config = check_model_folder(config.path)
        if config.settings.engine == "batched":  # before any weights load: one line, exit status 2
            check_batched_graph(config.path, genai_config)


def main() -> int:
    return run_service("chat", ChatSettings, _check, create_app, (EngineLoadError, ManifestError))


if __name__ == "__main__":
    sys.exit(main())
