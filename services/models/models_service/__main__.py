"""`python -m models_service`: check the settings, the manifest and the keys file, then serve (port 8002)."""

from __future__ import annotations

import sys

from ortserve_common.model_manifest import ManifestError, load_manifest
from ortserve_common.server import run_service

from models_service.keys import KeyStore, KeyStoreError
from models_service.main import create_app
from models_service.settings import ModelsSettings


def _check(settings: ModelsSettings) -> None:
    # Checked here as well as in the lifespan, so that a bad file ends the process with one clear line and status 2.
    load_manifest(settings.manifest)
    KeyStore(settings.data_dir)


def main() -> int:
    return run_service("models", ModelsSettings, _check, create_app, (ManifestError, KeyStoreError))


if __name__ == "__main__":
    sys.exit(main())
