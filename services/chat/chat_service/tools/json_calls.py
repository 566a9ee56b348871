"""The JSON side of reading tool calls: where a value ends in streamed text, whether a value being written can still
turn out to be a call, and the calls a finished value holds.

A call object is `{"name": <a declared tool>, "arguments" | "parameters": <object, or a JSON string of one>}`,
optionally with `"type": "function"` (Llama 3.2's layout); any other key, a name the request did not declare, or
arguments that are not an object make it ordinary JSON. A list of call objects is several calls.
"""

from __future__ import annotations

import json
import re
from typing import Any

CALL_KEYS = frozenset({"name", "arguments", "parameters", "type"})
STRING = r'"((?:[^"\\]|\\.)*)"'
_FIRST_KEY = re.compile(r"\{\s*" + STRING + r"\s*(:\s*)?")
_STRING_AT_START = re.compile(STRING)


class JsonValueEnd:
    """Finds where one JSON value ends in streamed text (strings, escapes and nesting respected)."""

    def __init__(self) -> None:
        self.depth = 0
        self.started = False
        self.done = False
        self._in_string = False
        self._escaped = False
        self._scalar = False

    def feed(self, text: str) -> tuple[int, int]:
        """(chars of leading whitespace skipped, chars that belong to the value) at the start of `text`."""
        skipped = 0
        for i, char in enumerate(text):
            if not self.started:
                if char.isspace():
                    skipped += 1
                    continue
                self.started = True
                self._scalar = char not in '{["'
                self.depth = 1 if char in "{[" else 0
                self._in_string = char == '"'
                continue
            if self._scalar:
                if char in ",}] \n\r\t":
                    self.done = True
                    return skipped, i - skipped
            elif self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
                    if self.depth == 0:
                        self.done = True
                        return skipped, i + 1 - skipped
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self.depth += 1
            elif char in "}]":
                self.depth -= 1
                if self.depth == 0:
                    self.done = True
                    return skipped, i + 1 - skipped
        return skipped, len(text) - skipped


def calls_in_value(text: str, names: set[str]) -> list[tuple[str, str]] | None:
    """The (name, arguments JSON) of each call in a finished value, or None when it is not wholly calls."""
    try:
        value: Any = json.loads(text)
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    calls = [_call(item, names) for item in items]
    if not calls or any(call is None for call in calls):
        return None
    return [call for call in calls if call is not None]


def _call(item: Any, names: set[str]) -> tuple[str, str] | None:
    if not isinstance(item, dict) or not item.keys() <= CALL_KEYS or item.get("type", "function") != "function":
        return None
    name = item.get("name")
    if not isinstance(name, str) or name not in names or ("arguments" in item and "parameters" in item):
        return None
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as OpenAI sends them: a JSON string
        try:
            decoded = json.loads(arguments)
        except ValueError:
            return None
        return (name, arguments) if isinstance(decoded, dict) else None
    return (name, json.dumps(arguments, ensure_ascii=False)) if isinstance(arguments, dict) else None


def could_be_call(text: str, names: set[str]) -> bool:
    """False once the start of a value being written rules out a call (so ordinary JSON is released at once rather
    than held to its end); True while it still may be one. Decides no more than `calls_in_value` would."""
    start = text.lstrip()
    if start.startswith("["):
        start = start[1:].lstrip()
    if not start:
        return True
    if start[0] != "{":
        return False
    key = _FIRST_KEY.match(start)
    if key is None:
        return True  # the first key is not written yet (or the object is malformed: decided at its end)
    if unescape(key.group(1)) not in CALL_KEYS:
        return False
    if unescape(key.group(1)) != "name" or key.group(2) is None:
        return True
    value = start[key.end() :]
    if not value:
        return True
    if value[0] != '"':
        return False
    name = _STRING_AT_START.match(value)
    if name is None:  # the name is still being written
        partial = value[1:]
        return "\\" in partial or any(n.startswith(partial) for n in names)
    return unescape(name.group(1)) in names


def unescape(json_string_body: str) -> str:
    try:
        return str(json.loads(f'"{json_string_body}"'))
    except ValueError:
        return json_string_body
