"""Where the built models live: the one place the model recipe version is written.

The model build (tools/model_build/build.py, which loads this file by path: its venv does not install the common
library), the Makefile (which reads the RECIPE_VERSION line with sed), the services' settings, tools, bench and tests
all take it from here, so bumping the recipe moves every one of them to the new folder at once. No imports beyond
the standard library, for the same reason.
"""

from __future__ import annotations

import os
from pathlib import Path

# Bumped whenever a model-build recipe changes its output: a new version is a new folder, so nothing serves or tests
# a model built by an older recipe.
RECIPE_VERSION = "2"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "ortserve"
DEFAULT_MODELS_DIR = DEFAULT_CACHE_DIR / "models" / f"r{RECIPE_VERSION}"


def models_dir(cache_dir: Path | None = None) -> Path:
    """ORTSERVE_MODELS_DIR (the Makefile exports it), else `<cache>/models/r<version>` with `~/.cache/ortserve` as
    the cache by default."""
    if os.environ.get("ORTSERVE_MODELS_DIR"):
        return Path(os.environ["ORTSERVE_MODELS_DIR"])
    return (cache_dir or DEFAULT_CACHE_DIR) / "models" / f"r{RECIPE_VERSION}"
