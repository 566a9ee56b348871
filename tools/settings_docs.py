"""Each service's configuration table, generated from its settings' field descriptions.

    python tools/settings_docs.py          # rewrite the tables in the services' READMEs
    python tools/settings_docs.py --check  # exit 1 if a table and its settings disagree (a unit test runs this)

A table sits between `<!-- settings:NAME -->` and `<!-- /settings:NAME -->` in the service's README; the settings
class is the one source of truth, so a new field, a changed default or description shows up in the README.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {
    "chat": ("chat_service.settings", "ChatSettings", ROOT / "services/chat/README.md"),
    "embeddings": ("embeddings_service.settings", "EmbedSettings", ROOT / "services/embeddings/README.md"),
    "models": ("models_service.settings", "ModelsSettings", ROOT / "services/models/README.md"),
}


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "(required)"
    if field.default_factory is not None:
        return "(see description)"
    value = field.default
    if value is None:
        return "(unset)"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | tuple) or isinstance(value, BaseModel):
        return "(see description)"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    if isinstance(value, Path) and value.is_relative_to(Path.home()):
        # A default under the home directory is written as ~/…: the table then reads the same whoever builds it,
        # and the check passes for every user, not only the one who last ran `make docs`.
        text = f"~/{value.relative_to(Path.home())}"
    if hasattr(value, "get_secret_value"):
        text = "(unset)"
    return f"`{text}`" if text else '`""`'


def table(name: str) -> str:
    module, cls, _ = SERVICES[name]
    settings = getattr(importlib.import_module(module), cls)
    prefix = settings.model_config.get("env_prefix", "")
    rows = ["| variable | default | description |", "|---|---|---|"]
    for field_name, field in settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{prefix}{field_name.upper()}` | {_default(field)} | {description} |")
    return "\n".join(rows)


def render(name: str, text: str) -> str:
    start, end = f"<!-- settings:{name} -->", f"<!-- /settings:{name} -->"
    if start not in text or end not in text:
        raise SystemExit(f"{SERVICES[name][2]} has no {start} … {end} block")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table(name)}\n{end}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report tables that disagree with the settings")
    args = parser.parse_args()
    stale = []
    for name, (_, _, readme) in SERVICES.items():
        text = readme.read_text(encoding="utf-8")
        wanted = render(name, text)
        if wanted != text:
            stale.append(str(readme.relative_to(ROOT)))
            if not args.check:
                readme.write_text(wanted, encoding="utf-8")
    if stale and args.check:
        sys.stderr.write(f"out of date: {', '.join(stale)}; run `make docs`\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
