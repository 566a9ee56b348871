"""`python -m models_service`: check the settings, the manifest and the keys file, then serve (port 8002)."""

from __future__ import annotations

import logging
import sys

from ortserve_common.logs import configure_logging
from ortserve_common.server import serve
from pydantic import ValidationError

from models_service.keys import KeyStore, KeyStoreError
from models_service.main import create_app
from models_service.manifest import ManifestError, load_manifest
from models_service.settings import ModelsSettings

logger = logging.getLogger("models_service")


def main() -> int:
    try:
        settings = ModelsSettings()
    except ValidationError as exc:
        configure_logging("INFO", "models")
        logger.error("invalid MODELS_* settings: %s", exc.errors(include_url=False))
        return 2
    configure_logging(settings.log_level, "models")
    # Checked here as well as in the lifespan, so that a bad file ends the process with one clear line and status 2.
    try:
        load_manifest(settings.manifest)
        KeyStore(settings.data_dir)
    except (ManifestError, KeyStoreError) as exc:
        logger.error("cannot start: %s", exc)
        return 2
    serve(create_app(settings), settings.host, settings.port)  # SIGTERM drains: see ortserve_common.server
    return 0


if __name__ == "__main__":
    sys.exit(main())
