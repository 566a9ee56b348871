"""A generated part of a hand-kept or separately generated Markdown file (docs/BENCHMARKS.md), between two HTML comment
markers: rewritten in place, or put before the file's Setup section (else at its end) the first time."""

from __future__ import annotations

from pathlib import Path


def refresh(path: Path, begin: str, end: str, section: str) -> None:
    """`section` starts with `begin` and ends with `end` (or is empty: the part is removed); nothing if no file."""
    if not path.exists():
        return
    text = path.read_text()
    if begin in text and end in text:
        before, _, rest = text.partition(begin)
        text = before + section + rest.partition(end)[2].removeprefix("\n")
    elif "\n## Setup" in text:
        before, _, after = text.partition("\n## Setup")
        text = before + "\n" + section + "\n## Setup" + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
