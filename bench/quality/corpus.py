"""The fixed offline corpus: a slice of this interpreter's own standard-library sources and a prose text shipped here.

The standard library is whatever the running Python ships, so the report records the Python version and each text's
sha256: figures from two interpreters are only comparable when the hashes match. The prose (prose.txt) was written
for this repository and is dedicated to the public domain (CC0); a text the models cannot have memorised.
"""

from __future__ import annotations

import hashlib
import platform
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# Whole modules, in this order: pure-Python code with docstrings and comments, about 2,300 tokens together for the
# SmolLM2 and Qwen2.5 tokenizers (at least 2 × the context, which llama-perplexity requires).
STDLIB_MODULES = ("fnmatch.py", "bisect.py")
PROSE = Path(__file__).with_name("prose.txt")


@dataclass(frozen=True)
class Text:
    name: str
    source: str
    body: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body.encode("utf-8")).hexdigest()


def stdlib_text() -> Text:
    folder = Path(sysconfig.get_paths()["stdlib"])
    body = "".join((folder / name).read_text(encoding="utf-8") for name in STDLIB_MODULES)
    source = f"Python {platform.python_version()} standard library: {', '.join(STDLIB_MODULES)} ({folder})"
    return Text("python-stdlib", source, body)


def prose_text() -> Text:
    return Text("prose", "bench/quality/prose.txt, written for this repository (CC0)", PROSE.read_text("utf-8"))


def corpus() -> list[Text]:
    return [stdlib_text(), prose_text()]
